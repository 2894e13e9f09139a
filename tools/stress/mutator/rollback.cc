// tools/stress/mutator/rollback.cc — rolls a copy-on-write region back to one
// of its snapshots, which must restore exactly the snapshot's bytes and
// leave the snapshot as it was.
//
// Rollbacks are quiesced: the region's sequence is odd and a grace period has
// passed before the call, so no accessor writes the region during it and
// every word read back has exactly one right value. (The tool controls its
// threads; writes racing a clone are covered by clone.cc and snapshot.cc.)
// Afterwards the region's untouched words are the snapshot's, every page gets
// a fresh zero_id (the accessors' earlier writes are gone) and the
// incarnation moves on, so a value written before the rollback that showed
// through afterwards would be neither untouched nor plausible.
#include "cow_view.h"

#include <algorithm>
#include <vector>

namespace stress {

namespace {

void rollback(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    if (s.snapshots.empty())
        return;
    const size_t pick = m.rng().below(unsigned(s.snapshots.size()));
    const unsigned j = s.snapshots[pick];
    if (!take_slot(m, si, j))
        return;
    Slot& t = w.slots[j];
    const unsigned n = m.npages(s);
    // Still the snapshot this region took there? (It may have been unmapped,
    // and the slot reused, since.)
    if (!t.live.load(std::memory_order_relaxed) || m.kind(t) != Kind::Snapshot || t.snapshot_of != si
        || t.snapshot_of_id != s.region_id || m.npages(t) != n) {
        s.snapshots.erase(s.snapshots.begin() + long(pick));
        release_slot(m, j);
        return;
    }
    for (unsigned p = 0; p < n; ++p) {
        if (!m.view(s, p).mapped || !m.view(t, p).mapped) {
            release_slot(m, j);
            return;
        }
    }

    begin_change(s);
    m.grace_period();
    auto r = m.call("rollback", m.address(s, 0), [&] { return w.rt.rollback(m.pointer(s, 0), m.pointer(t, 0)); });
    if (m.expect(r, 0, "rollback", si, m.address(s, 0), size_t(n) * w.page)) {
        std::vector<uint64_t> region(size_t(n) * w.words), snap(size_t(n) * w.words);
        const bool read = read_slot(m, si, s, n, region.data(), "read after rollback")
            && read_slot(m, j, t, n, snap.data(), "read snapshot after rollback");
        for (unsigned p = 0; p < n && read; ++p) {
            const uint64_t* want = w.cow_shadow_page(j, p);
            unsigned bad_region = 0, bad_snap = 0;
            size_t first_region = 0, first_snap = 0;
            for (size_t i = 0; i < w.words; ++i) {
                const uint64_t expected = shadow_load(want + i);
                if (region[size_t(p) * w.words + i] != expected && bad_region++ == 0)
                    first_region = i;
                if (snap[size_t(p) * w.words + i] != expected && bad_snap++ == 0)
                    first_snap = i;
            }
            if (bad_region)
                failure("%s: rollback of slot %u to its snapshot in slot %u: page %u word %zu reads %s, the snapshot holds %s; %u bad word(s)",
                    m.who(), si, j, p, first_region, describe_value(region[size_t(p) * w.words + first_region]).c_str(),
                    describe_value(shadow_load(want + first_region)).c_str(), bad_region);
            if (bad_snap)
                failure("%s: rollback of slot %u changed its snapshot in slot %u: page %u word %zu reads %s, it held %s; %u bad word(s)",
                    m.who(), si, j, p, first_snap, describe_value(snap[size_t(p) * w.words + first_snap]).c_str(),
                    describe_value(shadow_load(want + first_snap)).c_str(), bad_snap);
        }
        // The model follows the call (whatever it read back: a failure was
        // reported, and the accessors go on checking from the snapshot's
        // contents).
        for (unsigned p = 0; p < n; ++p) {
            uint64_t* shadow = w.cow_shadow_page(si, p);
            const uint64_t* want = w.cow_shadow_page(j, p);
            for (size_t i = 0; i < w.words; ++i)
                shadow_store(shadow + i, shadow_load(want + i));
            PageView v = m.view(s, p);
            v.zero_id = w.new_zero_id();
            m.set_view(s, p, v);
        }
        s.incarnation.store(s.incarnation.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        w.rollbacks.fetch_add(1, std::memory_order_relaxed);
        w.cow_bytes_verified.fetch_add(2 * size_t(n) * w.page, std::memory_order_relaxed);
        w.mutator_bytes_verified.fetch_add(2 * size_t(n) * w.page, std::memory_order_relaxed);
    }
    end_change(s);
    release_slot(m, j);
}

const RegisterOperation registered { { "rollback", { .cow = 18 }, rollback } };

} // namespace

} // namespace stress
