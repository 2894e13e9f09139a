// tools/stress/mutator/map.cc — maps a new region into an empty slot.
//
// The slot has no range to pick yet, so this operation uses the pieces of the
// shared steps directly: it picks a size, access and flags (and sometimes the
// slot's previous address), checks against the tool's record of owned pages
// whether a fixed address is free, maps, and then checks where the region
// landed before the model describes it.
#include "mutator.h"

#include <algorithm>
#include <cerrno>
#include <mutex>

namespace stress {

namespace {

void map(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    Rng& rng = m.rng();
    const bool hot = si < kHotSlots;
    unsigned n = pick_map_size(rng, hot);
    Access access = Access::ReadWrite, max_access = Access::None;
    unsigned kind = rng.below(100);
    if (kind < 75) {
    } else if (kind < 85) {
        access = Access::Read, max_access = Access::ReadWrite;
    } else if (kind < 90) {
        access = Access::Read, max_access = Access::Read;
    } else if (kind < 95) {
        access = Access::Read, max_access = Access::ReadExecute;
    } else {
        max_access = Access::ReadWriteExecute;
    }
    const bool immutable = !hot && rng.percent(3) && m.reserve_pin();
    if (immutable)
        n = std::min(n, 4u);
    RegionFlags flags = RegionFlags::None;
    if (immutable)
        flags = flags | RegionFlags::Immutable;
    const bool noreserve = rng.percent(10);
    if (noreserve)
        flags = flags | RegionFlags::NoReserve;
    // Shared regions have their own backing (a memfd) and discard path.
    if (rng.percent(15))
        flags = flags | RegionFlags::Shared;
    bool stack = rng.percent(10);
    size_t alignment = 0;
    if (rng.percent(8))
        alignment = size_t(64) << 10;
    else if (rng.percent(2))
        alignment = size_t(2) << 20;
    // Sometimes ask for the slot's previous address back.
    uintptr_t fixed = 0;
    if (s.last_base && rng.percent(20)) {
        fixed = s.last_base;
        stack = false;
        alignment = 0;
    }
    if (stack)
        flags = flags | RegionFlags::Stack;
    // Purgeable regions are private anonymous memory that volatility.cc
    // makes volatile and purges.
    const bool purgeable = !stack && !has(flags, RegionFlags::Shared) && rng.percent(25);
    if (purgeable)
        flags = flags | RegionFlags::Purgeable;
    const unsigned name = rng.below(kNameCount);

    MapOptions o;
    o.size = size_t(n) * w.page;
    o.alignment = alignment;
    o.access = access;
    o.max_access = max_access;
    o.flags = flags;
    o.name = kNames[name];

    std::lock_guard reuse(w.reuse_lock);
    if (fixed) {
        bool free = true;
        for (unsigned p = 0; p < n && free; ++p)
            free = m.page_free(fixed + size_t(p) * w.page);
        o.address = reinterpret_cast<void*>(fixed);
        if (!free) {
            // Taken by another slot (or past the arena's end): refused.
            const bool inside = fixed + o.size <= w.arena_hi;
            auto r = m.call("map_anonymous (fixed, taken)", fixed, [&] { return w.rt.map_anonymous(o); });
            if (r && !inside)
                failure("%s: map at %#lx past the arena's end succeeded", m.who(), (unsigned long)fixed);
            else if (inside)
                m.expect(r, EEXIST, "map_anonymous (fixed, over a mapped page)", si, fixed, o.size);
            if (r) {
                // Leave it to nobody: record it so no later check trips on it.
                for (unsigned p = 0; p < n; ++p)
                    w.owners[uintptr_t(*r) + size_t(p) * w.page] = Owner { si, true };
            }
            if (immutable)
                w.pinned.fetch_sub(1);
            return;
        }
    }

    begin_change(s);
    auto r = m.call("map_anonymous", fixed, [&] { return w.rt.map_anonymous(o); });
    if (!r) {
        failure("%s: map_anonymous(%u pages, align %zu, %s/%s, flags %#x%s) for slot %u failed: %s: %s", m.who(), n, alignment,
            access_name(access), access_name(max_access), unsigned(flags), fixed ? ", fixed" : "", si,
            errno_name(r.error().code()), r.error().message());
        if (immutable)
            w.pinned.fetch_sub(1);
        end_change(s);
        return;
    }
    const uintptr_t a = uintptr_t(*r);
    const size_t guard = stack ? w.page : 0;
    if ((alignment && a % alignment) || (fixed && a != fixed))
        failure("%s: map_anonymous(%u pages, align %zu%s) returned %#lx: misplaced%s", m.who(), n, alignment, stack ? ", stack" : "",
            (unsigned long)a, fixed ? " (asked for a fixed address)" : "");
    m.claim(si, a, n, guard, "map_anonymous");
    if (stack) {
        // The guard is reserved but belongs to no region: it faults, and
        // the API does not treat it as mapped.
        void* g = reinterpret_cast<void*>(a - w.page);
        m.probe("stack guard page", si, a - w.page, rng.percent(50), true);
        if (rng.percent(50))
            m.refuse(si, a - w.page, w.page, ENOENT, "unmap (guard)", "unmap (stack guard page)", [&] { return w.rt.unmap(g, w.page); });
        else
            m.refuse(si, a - w.page, w.page, ENOENT, "protect (guard)", "protect (stack guard page)",
                [&] { return w.rt.protect(g, w.page, Access::ReadWrite); });
    }

    m.publish(s, si,
        { .base = a, .npages = n, .access = access, .max_access = max_access, .name = name, .immutable = immutable,
            .committed = !noreserve, .stack = stack, .purgeable = purgeable });
    end_change(s);
}

// Most maps are anonymous; map_file.cc and map_clonable.cc have the rest.
const RegisterOperation registered { { "map", { .empty = 50 }, map } };

} // namespace

} // namespace stress
