// tools/stress/mutator/discard.cc — discards a range, which must then read
// back as the model says: zeros for anonymous memory; for a shared file
// region, what it held (its pages are the file's: nothing may be lost); for
// a private file region, the file's contents again (docs/api.md: its
// written pages are dropped and the next touch reads the file); zeros for a
// Clonable region or clone too, whatever it was cloned with (docs/cow.md).
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
    const Kind kind = m.kind(s);
    const int expected = m.any_immutable(s, r) ? EPERM : 0;
    // Half the discards race with accessors; the other half first wait
    // until none is in the slot, so that the pages can be checked to read
    // back as the model says (a racing accessor may legitimately write again
    // right after the discard).
    const bool checked = !expected && m.rng().percent(50);
    const Change discard { .call = "discard", .refused_call = "discard (refused)",
        .grace = checked ? Change::Grace::Before : Change::Grace::None };
    m.change(si, s, r, expected, discard, [&](void* p, size_t len) { return w.rt.discard(p, len); },
        [&](const PageRange& r) {
            std::vector<uint64_t>& buf = m.page_buffer();
            for (unsigned p = r.a; p < r.b; ++p) {
                PageView v = m.view(s, p);
                // A shared file page keeps its contents, so what accessors
                // know of it stays true; other pages start afresh.
                if (kind != Kind::SharedFile) {
                    v.zero_id = w.new_zero_id();
                    m.set_view(s, p, v);
                }
                // A copy-on-write page reads zeros, not what it was cloned
                // with (docs/cow.md: the range is mapped over with fresh
                // memory), so its untouched words are zeros from now on.
                if (kind == Kind::Cow) {
                    uint64_t* shadow = w.cow_shadow_page(si, p);
                    for (size_t i = 0; i < w.words; ++i)
                        shadow_store(shadow + i, 0);
                }
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
                const PageKey key = m.page_key(si, s, p);
                const size_t record = m.record(si, s, p);
                verify_page(w, buf.data(), key, q, v,
                    [&](unsigned owner, uint64_t* base) {
                        if (kind == Kind::SharedFile)
                            return known_exactly(w, owner, record, v.zero_id, base);
                        *base = 0; // untouched: zeros, or the file's contents
                        return true;
                    },
                    kind == Kind::Anonymous || kind == Kind::Cow ? "read after discard (must be zeros)"
                        : kind == Kind::SharedFile ? "read after discard of a shared file page (must keep its contents)"
                                                   : "read after discard of a private file page (must be the file's contents)");
                w.mutator_bytes_verified.fetch_add(w.page, std::memory_order_relaxed);
            }
        });
}

const RegisterOperation registered { { "discard", { .hot = 40, .cold = 24, .hot_file = 10, .cold_file = 12, .cow = 14 }, discard } };

} // namespace

} // namespace stress
