// tools/stress/mutator/discard.cc — discards a range, which must then read
// back as zeros.
#include "mutator.h"

#include <cerrno>

namespace stress {

namespace {

void discard(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    PageRange r;
    if (!m.pick_any(s, kMaxPages, &r))
        return;
    const int expected = m.any_immutable(s, r) ? EPERM : 0;
    // Half the discards race with accessors; the other half first wait
    // until none is in the slot, so that the pages can be checked to read
    // back as zeros (a racing accessor may legitimately write again right
    // after the discard).
    const bool checked = !expected && m.rng().percent(50);
    const Change discard { .call = "discard", .refused_call = "discard (refused)",
        .grace = checked ? Change::Grace::Before : Change::Grace::None };
    m.change(si, s, r, expected, discard, [&](void* p, size_t len) { return w.rt.discard(p, len); },
        [&](const PageRange& r) {
            std::vector<uint64_t>& buf = m.page_buffer();
            for (unsigned p = r.a; p < r.b; ++p) {
                PageView v = m.view(s, p);
                v.zero_id = w.new_zero_id();
                m.set_view(s, p, v);
                if (!checked || !readable(v.access))
                    continue;
                const uintptr_t q = m.address(s, p);
                m.activity().begin("read after discard", q);
                bool ok = guarded_read(reinterpret_cast<const uint64_t*>(q), buf.data(), w.words);
                m.activity().end();
                if (!ok) {
                    failure("%s: SIGSEGV reading %#lx (slot %u page %u, %s) after discard", m.who(), (unsigned long)q, si, p,
                        access_name(v.access));
                    continue;
                }
                verify_page(w, buf.data(), si, s.incarnation.load(std::memory_order_relaxed), p, q, v,
                    [](unsigned, uint64_t* base) {
                        *base = 0;
                        return true;
                    },
                    "read after discard (must be zeros)");
                w.mutator_bytes_verified.fetch_add(w.page, std::memory_order_relaxed);
            }
        });
}

const RegisterOperation registered { { "discard", { .hot = 40, .cold = 24 }, discard } };

} // namespace

} // namespace stress
