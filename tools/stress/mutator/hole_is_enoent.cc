// tools/stress/mutator/hole_is_enoent.cc — operations over a range with an
// unmapped, unowned page must fail with ENOENT and change nothing (accessors
// keep checking meanwhile).
#include "mutator.h"

#include <cerrno>
#include <mutex>

namespace stress {

namespace {

void hole_is_enoent(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    Rng& rng = m.rng();
    // The lock guards the record of owned pages, and holding it keeps the
    // hole unowned until the call is done: no map can fill it meanwhile.
    std::lock_guard reuse(w.reuse_lock);
    const unsigned n = m.npages(s);
    const uintptr_t base = m.address(s, 0);
    for (unsigned tries = 0; tries < 4; ++tries) {
        const unsigned p = rng.below(n);
        if (!m.view(s, p).mapped)
            continue;
        uintptr_t lo;
        if (rng.percent(50)) {
            const uintptr_t after = base + size_t(p + 1) * w.page;
            if ((p + 1 < n && m.view(s, p + 1).mapped) || !m.page_free(after))
                continue;
            lo = base + size_t(p) * w.page;
        } else {
            const uintptr_t before = base + size_t(p) * w.page - w.page;
            if ((p > 0 && m.view(s, p - 1).mapped) || !m.page_free(before))
                continue;
            lo = before;
        }
        void* ptr = reinterpret_cast<void*>(lo);
        const size_t len = 2 * w.page;
        switch (rng.below(6)) {
        case 0:
            m.refuse(si, lo, len, ENOENT, "unmap (hole)", "unmap (over a hole)", [&] { return w.rt.unmap(ptr, len); });
            break;
        case 1:
            m.refuse(si, lo, len, ENOENT, "protect (hole)", "protect (over a hole)", [&] { return w.rt.protect(ptr, len, Access::Read); });
            break;
        case 2:
            m.refuse(si, lo, len, ENOENT, "discard (hole)", "discard (over a hole)", [&] { return w.rt.discard(ptr, len); });
            break;
        case 3:
            m.refuse(si, lo, len, ENOENT, "set_name (hole)", "set_name (over a hole)", [&] { return w.rt.set_name(ptr, len, "hole"); });
            break;
        case 4:
            m.refuse(si, lo, len, ENOENT, "make_immutable (hole)", "make_immutable (over a hole)",
                [&] { return w.rt.make_immutable(ptr, len); });
            break;
        default:
            // The hole is found before the regions' kind is looked at, so
            // this is ENOENT over anonymous memory too.
            m.refuse(si, lo, len, ENOENT, "sync (hole)", "sync (over a hole)", [&] { return w.rt.sync(ptr, len); });
            break;
        }
        return;
    }
}

const RegisterOperation registered { { "hole_is_enoent", { .cold = 9, .cold_file = 7 }, hole_is_enoent } };

} // namespace

} // namespace stress
