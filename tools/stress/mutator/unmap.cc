// tools/stress/mutator/unmap.cc — unmaps all of a slot's mapping that can be
// unmapped; unmap_part.cc uses the same steps for a random piece of it.
//
// File regions take the same steps: a shared one writes its pages back as
// it goes, which the next map_file of the slot's file checks (map_file.cc).
#include "mutator.h"

#include <mutex>
#include <span>

namespace stress {

void unmap_slot(Mutator& m, unsigned si, Slot& s, bool full)
{
    World& w = m.world();
    // Maps and unmaps are serialised, and an unmap holds the lock through
    // its grace period (see "Address reuse" in model.h).
    std::lock_guard reuse(w.reuse_lock);
    // Pick: immutable pages can never be unmapped, so they are left out;
    // every call below must succeed.
    auto mutable_runs = m.runs(s, [](unsigned, const PageView& v) { return !v.immutable; });
    std::span<const PageRange> ranges = mutable_runs;
    PageRange part;
    if (!full) {
        if (!m.pick_range(mutable_runs, kMaxPages, &part))
            return;
        ranges = { &part, 1 };
    }
    if (ranges.empty())
        return;

    // Accessors that began before the unmap may still touch the range; once
    // they are done (the grace period after the calls) it can safely be
    // handed out again.
    const Change unmap { .call = "unmap", .grace = Change::Grace::After };
    m.change(si, s, ranges, 0, unmap, [&](void* p, size_t len) { return w.rt.unmap(p, len); },
        [&](const PageRange& r) {
            m.probe("access after unmap", si, m.address(s, r.a + m.rng().below(r.size())), m.rng().percent(50), true);
            for (unsigned p = r.a; p < r.b; ++p) {
                w.owners.erase(m.address(s, p));
                m.set_view(s, p, PageView {});
            }
            if (r.a == 0 && s.guard) {
                // The guard page goes with the bottom piece of a stack.
                w.owners.erase(m.address(s, 0) - w.page);
                s.guard = false;
            } else if (r.a > 0) {
                // So does a guard an earlier unmap left below this piece.
                auto below = w.owners.find(m.address(s, r.a - 1));
                if (below != w.owners.end() && below->second.slot == si && below->second.guard)
                    w.owners.erase(below);
            }
            if (s.stack && r.b < m.npages(s) && m.view(s, r.b).mapped) {
                // The stack piece above lost what was below it: the range's
                // top page stays reserved as its new guard (docs/api.md).
                w.owners[m.address(s, r.b - 1)] = Owner { si, true };
                m.probe("new stack guard page", si, m.address(s, r.b - 1), m.rng().percent(50), true);
            }
            bool live = false;
            for (unsigned p = 0; p < m.npages(s) && !live; ++p)
                live = m.view(s, p).mapped;
            s.live.store(live, std::memory_order_relaxed);
        });
}

namespace {

void unmap_all(Mutator& m, unsigned si, Slot& s) { unmap_slot(m, si, s, true); }

// Clones and snapshots are regions of their own: unmapping them (and their
// sources, which leaves the clones as they were) is what gives their memory
// back (main.cc checks no memfd of theirs is left at the end of a phase).
const RegisterOperation registered { { "unmap", { .hot = 30, .cold = 8, .hot_file = 35, .cold_file = 8, .cow = 15, .snapshot = 35 }, unmap_all } };

} // namespace

} // namespace stress
