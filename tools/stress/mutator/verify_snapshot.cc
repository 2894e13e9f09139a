// tools/stress/mutator/verify_snapshot.cc — reads the whole of a snapshot and
// checks every word against what it held when it was taken (a snapshot never
// changes, whatever its source, clones and rollbacks do meanwhile), and that
// writing it faults.
//
// Nothing changes the slot (the mutator holds it, and a snapshot is never
// written), so this runs with the sequence even, beside the accessors.
#include "cow_view.h"

#include <vector>

namespace stress {

namespace {

void verify_snapshot(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    const unsigned n = m.npages(s);
    std::vector<uint64_t> data(size_t(n) * w.words);
    if (!read_slot(m, si, s, n, data.data(), "read snapshot"))
        return;
    for (unsigned p = 0; p < n; ++p) {
        const uint64_t* want = w.cow_shadow_page(si, p);
        for (size_t i = 0; i < w.words; ++i) {
            const uint64_t v = data[size_t(p) * w.words + i];
            if (v != shadow_load(want + i)) {
                failure("%s: snapshot in slot %u (of slot %u) changed: page %u word %zu reads %s, it held %s", m.who(), si, s.snapshot_of,
                    p, i, describe_value(v).c_str(), describe_value(shadow_load(want + i)).c_str());
                break;
            }
        }
    }
    m.probe("write to a snapshot", si, m.address(s, m.rng().below(n)) + 8 * m.rng().below(unsigned(w.words)), true, true);
    w.cow_bytes_verified.fetch_add(size_t(n) * w.page, std::memory_order_relaxed);
    w.mutator_bytes_verified.fetch_add(size_t(n) * w.page, std::memory_order_relaxed);
}

const RegisterOperation registered { { "verify_snapshot", { .snapshot = 45 }, verify_snapshot } };

} // namespace

} // namespace stress
