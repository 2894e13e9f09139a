// tools/stress/mutator/sync.cc — Runtime::sync over part of a file region,
// then a look at the file itself.
//
// Shared regions: half the syncs race with the accessors' writes (a write
// racing a sync must never be lost, docs/api.md: the accessors' exact checks
// and the next map's check of the file find it if it is, Invalidate
// included); the other half first wait them
// out, and then the file must hold exactly what the pages hold, and what the
// model knows for certain: each accessor's last write where it certainly
// landed, elsewhere the file's words as the map read them or a value written
// in this incarnation. `Invalidate` drops the clean cached pages of a file no
// region could write, so the read-back faults them in from the file again.
//
// Private regions: sync is accepted and writes nothing, so the file must
// still be exactly what the map read (nothing else writes the slot's file
// while it holds a private region).
#include "mutator.h"

#include <vector>

namespace stress {

namespace {

SyncFlags pick_flags(Rng& rng)
{
    switch (rng.below(6)) {
    case 0: return SyncFlags::Async;
    case 1: return SyncFlags::Sync | SyncFlags::Invalidate;
    case 2: return SyncFlags::Async | SyncFlags::Invalidate;
    case 3: return SyncFlags::None;
    default: return SyncFlags::Sync;
    }
}

void check_private(Mutator& m, unsigned si, Slot& s, const PageRange& r)
{
    World& w = m.world();
    std::vector<uint64_t>& buf = m.page_buffer();
    for (unsigned p = r.a; p < r.b; ++p) {
        const PageKey key = m.page_key(si, s, p);
        if (!w.files.read_page(si, key.vpage, buf.data()))
            continue;
        verify_page(w, buf.data(), key, m.address(s, p), m.view(s, p),
            [](unsigned, uint64_t* base) {
                *base = 0; // exactly as read at map time
                return true;
            },
            "slot's file after sync of a private region (must be unchanged)");
        w.mutator_bytes_verified.fetch_add(w.page, std::memory_order_relaxed);
    }
}

void check_shared(Mutator& m, unsigned si, Slot& s, const PageRange& r, bool invalidated)
{
    World& w = m.world();
    std::vector<uint64_t>& file = m.page_buffer();
    std::vector<uint64_t> memory(w.words);
    for (unsigned p = r.a; p < r.b; ++p) {
        const PageView v = m.view(s, p);
        const PageKey key = m.page_key(si, s, p);
        const size_t record = m.record(si, s, p);
        if (!w.files.read_page(si, key.vpage, file.data()))
            continue;
        verify_page(w, file.data(), key, m.address(s, p), v,
            [&](unsigned owner, uint64_t* base) { return known_exactly(w, owner, record, v.zero_id, base); },
            "slot's file after sync");
        w.mutator_bytes_verified.fetch_add(w.page, std::memory_order_relaxed);
        if (!readable(v.access))
            continue;
        const uintptr_t q = m.address(s, p);
        m.activity().begin("read after sync", q);
        const bool ok = guarded_read(reinterpret_cast<const uint64_t*>(q), memory.data(), w.words);
        m.activity().end();
        if (!ok) {
            failure("%s: SIGSEGV reading %#lx (slot %u page %u, %s) after sync", m.who(), (unsigned long)q, si, p, access_name(v.access));
            continue;
        }
        for (size_t i = 0; i < w.words; ++i) {
            if (memory[i] != file[i]) {
                failure("%s: after sync%s, slot %u page %u (file page %u) word %zu reads %s but the file holds %s", m.who(),
                    invalidated ? " with Invalidate" : "", si, p, key.vpage, i, describe_value(memory[i]).c_str(),
                    describe_value(file[i]).c_str());
                break;
            }
        }
        w.mutator_bytes_verified.fetch_add(w.page, std::memory_order_relaxed);
    }
}

void sync(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    // Syncs are drawn for file regions only: over anonymous memory sync
    // must fail with EINVAL, which bad_arguments checks.
    const Kind kind = m.kind(s);
    if (!is_file(kind))
        return;
    PageRange r;
    if (!m.pick_any(s, kMaxPages, &r)) // immutable pages included: sync never changes a mapping
        return;
    SyncFlags flags = m.rng().percent(15) ? SyncFlags::Sync | SyncFlags::Async : pick_flags(m.rng());
    const int expected = flags == (SyncFlags::Sync | SyncFlags::Async) ? EINVAL : 0;
    const bool checked = !expected && kind == Kind::SharedFile && m.rng().percent(50);
    // A checked sync holds the accessors off (sequence odd, then a grace
    // period) until the read-back is done; an unchecked one changes nothing
    // they could see, so they keep going.
    const Change sync { .call = "sync", .refused_call = "sync (refused)", .refused_what = "sync (Sync with Async)", .odd = checked,
        .grace = checked ? Change::Grace::Before : Change::Grace::None };
    m.change(si, s, r, expected, sync, [&](void* p, size_t len) { return w.rt.sync(p, len, flags); },
        [&](const PageRange& r) {
            if (kind == Kind::PrivateFile)
                check_private(m, si, s, r);
            else if (checked) {
                check_shared(m, si, s, r, has(flags, SyncFlags::Invalidate));
                w.checked_syncs.fetch_add(1, std::memory_order_relaxed);
            }
        });
}

const RegisterOperation registered { { "sync", { .hot_file = 30, .cold_file = 20 }, sync } };

} // namespace

} // namespace stress
