// tools/stress/mutator/map_clonable.cc — maps a Clonable anonymous region into
// an empty slot (docs/cow.md): the source of clones and snapshots
// (clone.cc, snapshot.cc). Until it is first cloned the fault service serves
// it like any anonymous region, so its untouched words are zeros; the model
// keeps them in the copy-on-write shadow, like a clone's (model.h).
#include "mutator.h"

#include <mutex>

namespace stress {

namespace {

void map_clonable(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    Rng& rng = m.rng();
    const unsigned n = pick_map_size(rng, si < kHotSlots);
    // A NoReserve source makes NoReserve clones: check_tables counts the
    // commit of both kinds.
    const bool noreserve = rng.percent(10);
    MapOptions o;
    o.size = size_t(n) * w.page;
    o.access = Access::ReadWrite;
    o.flags = RegionFlags::Clonable | (noreserve ? RegionFlags::NoReserve : RegionFlags::None);
    o.name = kNames[kCowName];

    std::lock_guard reuse(w.reuse_lock);
    begin_change(s);
    auto r = m.call("map_anonymous (clonable)", 0, [&] { return w.rt.map_anonymous(o); });
    if (!r) {
        failure("%s: map_anonymous(%u pages, Clonable%s) for slot %u failed: %s: %s", m.who(), n, noreserve ? "|NoReserve" : "", si,
            errno_name(r.error().code()), r.error().message());
        end_change(s);
        return;
    }
    const uintptr_t a = uintptr_t(*r);
    m.claim(si, a, n, 0, "map_anonymous (clonable)");
    for (unsigned p = 0; p < n; ++p) {
        uint64_t* shadow = w.cow_shadow_page(si, p);
        for (size_t i = 0; i < w.words; ++i)
            shadow_store(shadow + i, 0);
    }
    m.publish(s, si,
        { .base = a, .npages = n, .kind = Kind::Cow, .access = Access::ReadWrite, .max_access = Access::ReadWrite, .name = kCowName,
            .committed = !noreserve });
    end_change(s);
    w.clonable_maps.fetch_add(1, std::memory_order_relaxed);
}

const RegisterOperation registered { { "map_clonable", { .empty = 14 }, map_clonable } };

} // namespace

} // namespace stress
