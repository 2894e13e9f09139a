// tools/stress/mutator/volatility.cc — makes a range of a purgeable region
// volatile, sometimes purges (which may take other slots' volatile pages
// too), and makes it non-volatile again. The model: the pages the runtime
// reports purged were discarded (fresh zero_ids); every other page must keep
// exactly what it held, which the accessors check with their records. A
// slot that is not purgeable must refuse with EINVAL, an immutable range
// with EPERM.
#include "mutator.h"

#include <cerrno>
#include <thread>

namespace stress {

namespace {

void volatility(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    Rng& rng = m.rng();
    PageRange r;
    if (!m.pick_any(s, kMaxPages, &r))
        return;
    const int expected = m.any_immutable(s, r) ? EPERM : !s.purgeable ? EINVAL : 0;
    if (expected) {
        if (rng.percent(50))
            m.refuse(si, m.address(s, r.a), r.size() * w.page, expected, "set_volatile (refused)", "set_volatile",
                [&] { return w.rt.set_volatile(m.pointer(s, r.a), r.size() * w.page); });
        else
            m.refuse(si, m.address(s, r.a), r.size() * w.page, expected, "set_nonvolatile (refused)", "set_nonvolatile",
                [&] { return w.rt.set_nonvolatile(m.pointer(s, r.a), r.size() * w.page); });
        return;
    }
    const auto priority = PurgePriority(rng.below(4));
    // The pages may be purged from the moment they are volatile: what
    // accessors see meanwhile is dropped (odd sequence).
    begin_change(s);
    auto made = m.call("set_volatile", m.address(s, r.a), [&] {
        return w.rt.set_volatile(m.pointer(s, r.a), r.size() * w.page, { .priority = priority });
    });
    if (!m.expect(made, 0, "set_volatile", si, m.address(s, r.a), r.size() * w.page)) {
        end_change(s);
        return;
    }
    const unsigned how = rng.below(100);
    if (how < 40) {
        auto purged = m.call("purge", m.address(s, r.a), [&] { return w.rt.purge(rng.percent(50) ? kPurgeAll : w.page); });
        m.expect(purged, 0, "purge", si, m.address(s, r.a), r.size() * w.page);
    } else if (how < 70) {
        std::this_thread::yield(); // let accessors and other purges at it
    }
    // ENOMEM (the commit limit, with other slots' charges) keeps the range
    // volatile: try again, as an application would after freeing memory.
    Result<NonVolatileResult> back = fail(ENOMEM, "not tried");
    for (int attempt = 0; attempt < 100 && !back; ++attempt) {
        back = m.call("set_nonvolatile", m.address(s, r.a), [&] { return w.rt.set_nonvolatile(m.pointer(s, r.a), r.size() * w.page); });
        if (!back && back.error().code() != ENOMEM)
            break;
        if (!back)
            std::this_thread::yield();
    }
    if (!m.expect(back, 0, "set_nonvolatile", si, m.address(s, r.a), r.size() * w.page)) {
        end_change(s);
        return;
    }
    for (const auto& pr : back->purged_ranges) {
        const uintptr_t lo = uintptr_t(pr.address), hi = lo + pr.size;
        if (lo < m.address(s, r.a) || hi > m.address(s, r.b) || lo % w.page || pr.size % w.page || !pr.size) {
            failure("%s: set_nonvolatile(%#lx, %u pages) on slot %u reported %#lx+%#zx outside the range", m.who(),
                (unsigned long)m.address(s, r.a), r.size(), si, (unsigned long)lo, pr.size);
            continue;
        }
        for (uintptr_t a = lo; a < hi; a += w.page) {
            const unsigned p = unsigned((a - m.address(s, 0)) / w.page);
            PageView v = m.view(s, p);
            v.zero_id = w.new_zero_id();
            m.set_view(s, p, v);
        }
        w.purged_pages.fetch_add(pr.size / w.page, std::memory_order_relaxed);
    }
    end_change(s);
}

const RegisterOperation registered { { "volatility", { .hot = 8, .cold = 8, .hot_file = 2, .cold_file = 2 }, volatility } };

} // namespace

} // namespace stress
