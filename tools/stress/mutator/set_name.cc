// tools/stress/mutator/set_name.cc — renames a range.
//
// Renaming splits regions without changing what accessors may do, so it
// runs with the sequence even: accessors keep checking the slot while its
// regions are cut up underneath them.
#include "mutator.h"

#include <cerrno>
#include <string>

namespace stress {

namespace {

void set_name(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    Rng& rng = m.rng();
    PageRange r;
    if (!m.pick_any(s, kMaxPages, &r))
        return;
    unsigned name = rng.below(kNameCount);
    std::string text = kNames[name];
    int expected = m.any_immutable(s, r) ? EPERM : 0;
    if (rng.percent(5)) {
        text = rng.percent(50) ? "bad[name]" : std::string(100, 'n');
        expected = EINVAL; // names are checked before the range
    }
    const Change set_name { .call = "set_name", .odd = false };
    m.change(si, s, r, expected, set_name, [&](void* p, size_t len) { return w.rt.set_name(p, len, text); },
        [&](const PageRange& r) {
            for (unsigned p = r.a; p < r.b; ++p)
                s.name[p] = uint8_t(name);
        });
}

const RegisterOperation registered { { "set_name", { .hot = 15, .cold = 8, .hot_file = 12, .cold_file = 6 }, set_name } };

} // namespace

} // namespace stress
