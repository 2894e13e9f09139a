// tools/stress/mutator/cow_refusals.cc — bad copy-on-write calls are refused
// with the errno docs/cow.md documents and change nothing (accessors keep
// checking the slots meanwhile, their sequences even):
//   - clone / snapshot of a region that is not clonable (plain anonymous, a
//     shared file region): EINVAL (EPERM if it is immutable, checked first;
//     private file and purgeable regions clone, docs/cow.md);
//   - map_anonymous with Clonable and Shared, Stack or Purgeable: EINVAL;
//   - clone / snapshot / rollback at an address inside a region: EINVAL;
//   - rollback to a region that is no snapshot, to a snapshot of another
//     region (or of an earlier mapping of this slot), or of a snapshot to
//     itself: EINVAL.
#include "cow_view.h"

#include <cerrno>

namespace stress {

namespace {

// A slot j that another operation does not hold, page 0 mapped, as the
// "snapshot" of a bad rollback of slot si: EINVAL unless it really is one of
// si's snapshots (then nothing is tried).
void rollback_to_other(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    const unsigned j = m.rng().below(w.opt.slots);
    if (!take_slot(m, si, j))
        return;
    Slot& t = w.slots[j];
    const bool mine = m.kind(t) == Kind::Snapshot && t.snapshot_of == si && t.snapshot_of_id == s.region_id;
    if (t.live.load(std::memory_order_relaxed) && m.view(t, 0).mapped && !mine) {
        m.refuse(si, m.address(s, 0), m.npages(s) * w.page, EINVAL, "rollback (refused)",
            m.kind(t) == Kind::Snapshot ? "rollback (to a snapshot of another region)" : "rollback (to a region that is no snapshot)",
            [&] { return w.rt.rollback(m.pointer(s, 0), m.pointer(t, 0)); });
        w.cow_refusals.fetch_add(1, std::memory_order_relaxed);
    }
    release_slot(m, j);
}

void cow_refusals(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    Rng& rng = m.rng();
    const Kind kind = m.kind(s);
    const unsigned n = m.npages(s);
    if (!is_cow(kind)) {
        if (rng.percent(30)) {
            MapOptions o;
            o.size = w.page;
            const unsigned which = rng.below(3);
            o.flags = RegionFlags::Clonable
                | (which == 0 ? RegionFlags::Shared : which == 1 ? RegionFlags::Stack : RegionFlags::Purgeable);
            auto r = m.call("map_anonymous (bad clonable)", 0, [&] { return w.rt.map_anonymous(o); });
            m.expect(r, EINVAL, "map_anonymous (Clonable with Shared, Stack or Purgeable)", si, 0, o.size);
            if (r)
                (void)w.rt.unmap(*r, o.size);
            w.cow_refusals.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        // The start of the region around a mapped page (regions split, so
        // the runtime says where).
        PageRange r;
        if (!m.pick_any(s, 1, &r))
            return;
        auto st = m.call("region_stats", m.address(s, r.a), [&] { return w.rt.region_stats(m.pointer(s, r.a)); });
        if (!m.expect(st, 0, "region_stats", si, m.address(s, r.a), w.page))
            return;
        const int expected = has(st->flags, RegionFlags::Immutable) ? EPERM : EINVAL;
        // Private file regions and purgeable regions clone as they are
        // (docs/cow.md): only an immutable one is refused.
        if (expected == EINVAL && (kind == Kind::PrivateFile || has(st->flags, RegionFlags::Purgeable)))
            return;
        void* base = reinterpret_cast<void*>(st->base);
        if (rng.percent(50))
            m.refuse(si, st->base, st->size, expected, "clone (refused)", is_file(kind) ? "clone (of a file region)" : "clone (of a region not clonable)",
                [&] { return w.rt.clone(base); });
        else
            m.refuse(si, st->base, st->size, expected, "snapshot (refused)",
                is_file(kind) ? "snapshot (of a file region)" : "snapshot (of a region not clonable)", [&] { return w.rt.snapshot(base); });
        w.cow_refusals.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    const size_t len = size_t(n) * w.page;
    switch (rng.below(kind == Kind::Snapshot ? 2 : 4)) {
    case 0:
        if (n < 2)
            return;
        // Not the start of a region (copy-on-write slots are never split).
        m.refuse(si, m.address(s, 1), len, EINVAL, "clone (refused)", "clone (not the start of a region)",
            [&] { return rng.percent(50) ? w.rt.clone(m.pointer(s, 1)) : w.rt.snapshot(m.pointer(s, 1)); });
        break;
    case 1:
        // A region is no snapshot of itself (nor is a snapshot).
        m.refuse(si, m.address(s, 0), len, EINVAL, "rollback (refused)", "rollback (to itself)",
            [&] { return w.rt.rollback(m.pointer(s, 0), m.pointer(s, 0)); });
        break;
    case 2:
        rollback_to_other(m, si, s);
        return;
    default: {
        if (n < 2 || s.snapshots.empty())
            return;
        const unsigned j = s.snapshots[rng.below(unsigned(s.snapshots.size()))];
        if (!take_slot(m, si, j))
            return;
        Slot& t = w.slots[j];
        if (t.live.load(std::memory_order_relaxed) && m.view(t, 0).mapped)
            m.refuse(si, m.address(s, 1), len, EINVAL, "rollback (refused)", "rollback (not the start of the region)",
                [&] { return w.rt.rollback(m.pointer(s, 1), m.pointer(t, 0)); });
        release_slot(m, j);
        break;
    }
    }
    w.cow_refusals.fetch_add(1, std::memory_order_relaxed);
}

const RegisterOperation registered { { "cow_refusals", { .cold = 3, .cold_file = 3, .cow = 8, .snapshot = 10 }, cow_refusals } };

} // namespace

} // namespace stress
