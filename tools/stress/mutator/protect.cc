// tools/stress/mutator/protect.cc — changes the access of a range, and checks
// that the new protection is enforced. For a file region the maximum access
// follows the descriptor (r-x for a shared region mapped through a read-only
// one), so writable protections there must be refused with EACCES.
#include "mutator.h"

#include <cerrno>

namespace stress {

namespace {

// The check step: what protect(range, acc) must return.
int predict_protect(const Mutator& m, const Slot& s, PageRange r, Access acc)
{
    bool imm = false, bw = false, bx = false;
    for (unsigned p = r.a; p < r.b; ++p) {
        imm |= m.view(s, p).immutable;
        bw |= s.been_writable[p];
        bx |= s.been_executable[p];
    }
    if (imm)
        return EPERM;
    if (!is_subset(acc, s.max_access))
        return EACCES;
    const bool want_w = has(acc, Access::Write), want_x = has(acc, Access::Execute);
    if ((want_w && want_x) || (want_x && bw) || (want_w && bx))
        return EACCES; // W^X, at one time and over time
    return 0;
}

void protect(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    Rng& rng = m.rng();
    // Ranges may include immutable pages, which must be refused.
    PageRange r;
    if (!m.pick_any(s, kMaxPages, &r))
        return;
    static constexpr Access kChoices[] = { Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite, Access::ReadWrite,
        Access::None, Access::None, Access::ReadExecute, Access::ReadWriteExecute };
    const Access acc = kChoices[rng.below(sizeof kChoices / sizeof kChoices[0])];
    const int expected = predict_protect(m, s, r, acc);
    const Change protect { .call = "protect", .refused_call = "protect (refused)" };
    m.change(si, s, r, expected, protect, [&](void* p, size_t len) { return w.rt.protect(p, len, acc); },
        [&](const PageRange& r) {
            for (unsigned p = r.a; p < r.b; ++p) {
                PageView v = m.view(s, p);
                v.access = acc;
                m.set_view(s, p, v);
                s.been_writable[p] |= writable(acc);
                s.been_executable[p] |= has(acc, Access::Execute);
            }
            const uintptr_t q = m.address(s, r.a + rng.below(r.size())) + 8 * rng.below(unsigned(w.words));
            if (!readable(acc))
                m.probe("read after protect ---", si, q, false, true);
            m.probe(writable(acc) ? "write after protect rw-" : "write after protect without w", si, q, true, !writable(acc));
        });
}

const RegisterOperation registered { { "protect", { .hot = 15, .cold = 20, .hot_file = 13, .cold_file = 16 }, protect } };

} // namespace

} // namespace stress
