// tools/stress/mutator/make_immutable.cc — seals a range, after which every
// call that would change it must be refused.
#include "mutator.h"

#include <cerrno>
#include <mutex>

namespace stress {

namespace {

constexpr unsigned kMaxImmutablePagesPerSlot = 8;

void make_immutable(Mutator& m, unsigned si, Slot& s)
{
    // Hot slots must keep losing their pages (see Weights); sealed ones never
    // would.
    if (si < kHotSlots)
        return;
    World& w = m.world();
    unsigned immutable_pages = 0;
    for (unsigned p = 0; p < m.npages(s); ++p)
        immutable_pages += m.view(s, p).immutable;
    PageRange r;
    if (!m.pick_any(s, 4, &r))
        return;
    const int expected = m.any_immutable(s, r) ? EPERM : 0;
    if (!expected) {
        // Immutable pages stay mapped for the runtime's life; keep them few.
        if (immutable_pages + r.size() > kMaxImmutablePagesPerSlot)
            return;
        if (!s.pinned && !m.reserve_pin())
            return;
    }
    const Change seal { .call = "make_immutable", .refused_call = "make_immutable (refused)",
        .refused_what = "make_immutable (already immutable)" };
    const bool sealed = m.change(si, s, r, expected, seal, [&](void* p, size_t len) { return w.rt.make_immutable(p, len); },
        [&](const PageRange& r) {
            for (unsigned p = r.a; p < r.b; ++p) {
                PageView v = m.view(s, p);
                v.immutable = true;
                m.set_view(s, p, v);
            }
            s.pinned = true;
            // Everything that would change the range must now be refused.
            const uintptr_t a = m.address(s, r.a);
            void* ptr = m.pointer(s, r.a);
            const size_t len = r.size() * w.page;
            {
                std::lock_guard reuse(w.reuse_lock);
                m.refuse(si, a, len, EPERM, "unmap (immutable)", "unmap (immutable)", [&] { return w.rt.unmap(ptr, len); });
            }
            m.refuse(si, a, len, EPERM, "protect (immutable)", "protect (immutable)",
                [&] { return w.rt.protect(ptr, len, Access::Read); });
            m.refuse(si, a, len, EPERM, "discard (immutable)", "discard (immutable)", [&] { return w.rt.discard(ptr, len); });
            m.refuse(si, a, len, EPERM, "set_name (immutable)", "set_name (immutable)",
                [&] { return w.rt.set_name(ptr, len, "renamed"); });
            m.refuse(si, a, len, EPERM, "make_immutable (again)", "make_immutable (again)",
                [&] { return w.rt.make_immutable(ptr, len); });
        });
    // A seal that failed gives back the pin it reserved (unless the slot
    // held immutable pages already).
    if (!expected && !sealed && !s.pinned)
        w.pinned.fetch_sub(1);
}

const RegisterOperation registered { { "make_immutable", { .cold = 3, .cold_file = 3 }, make_immutable } };

} // namespace

} // namespace stress
