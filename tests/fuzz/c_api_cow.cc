// The c_api fuzz target's copy-on-write operations: faultline_clone,
// faultline_snapshot and faultline_rollback against the page model
// (tests/fuzz/c_api.cc has the overview).
#include "c_api_state.h"

namespace fuzz::capi {

// faultline_clone / faultline_snapshot (docs/cow.md) of the region at a
// fuzzed address: the copy must read what the source held, the source must
// not change, and each side's later writes stay its own (check_page).
// Whether the address starts a region is asked of the runtime (the model
// does not follow region boundaries through splits); everything else is the
// model's.
void op_clone(Input& in)
{
    const uintptr_t a = pick_address(in);
    const uint8_t how = in.u8();
    if ((how & 6) == 6) {
        // (A rollback shares the clone's operation number, so that the
        // corpus made before it still means what it did.)
        op_rollback(in, a);
        return;
    }
    const bool snapshot = how & 1;
    const char* name = pick_name(in);
    const bool null_out = in.u8() == 0;
    Expect e;
    size_t first = 0, count = 0;
    const bool inside = a >= s.base && a < arena_end();
    if (null_out || !valid_name(name))
        e.add(EINVAL);
    if (!inside || !s.pages[(a - s.base) / kPage].mapped) {
        e.add(ENOENT);
    } else {
        faultline_region_stats st {};
        FUZZ_CHECK(faultline_get_region_stats(s.rt, reinterpret_cast<void*>(a), &st) == 0, "%s", faultline_last_error());
        const Page& p = s.pages[(a - s.base) / kPage];
        if (st.base != a)
            e.add(EINVAL);
        else if (p.immutable)
            e.add(EPERM);
        else if (!((p.kind == Kind::Anonymous && p.clonable) || p.kind == Kind::Purgeable || p.kind == Kind::FilePrivate))
            e.add(EINVAL);
        first = (st.base - s.base) / kPage;
        count = st.size / kPage;
        if (!free_fit(count, kPage))
            e.may_fail_with = { ENOMEM };
    }
    void* out = nullptr;
    const int rc = snapshot ? faultline_snapshot(s.rt, reinterpret_cast<void*>(a), name, null_out ? nullptr : &out)
                            : faultline_clone(s.rt, reinterpret_cast<void*>(a), name, null_out ? nullptr : &out);
    if (trace)
        std::fprintf(stderr, "  %s %#lx: %d\n", snapshot ? "snapshot" : "clone", a, rc);
    check_outcome(snapshot ? "faultline_snapshot" : "faultline_clone", rc, e);
    if (rc != 0)
        return;
    const uintptr_t at = reinterpret_cast<uintptr_t>(out);
    FUZZ_CHECK(at >= s.base && at % kPage == 0 && at + count * kPage <= arena_end() && !any_mapped((at - s.base) / kPage, count),
        "clone gave %#lx+%#zx, not free", at, count * kPage);
    const size_t to = (at - s.base) / kPage;
    for (size_t i = 0; i < count; ++i) {
        const Page& from = s.pages[first + i];
        Page& p = s.pages[to + i];
        p = Page {};
        p.mapped = true;
        // A clone of a purgeable region is purgeable and non-volatile; a
        // page the source may have lost to a purge reads its bytes or zeros.
        // A clone of a private file region shows the file where the source
        // has no copy of its own.
        p.kind = from.kind;
        p.clonable = from.clonable;
        p.file_page = from.file_page;
        p.private_copy = from.private_copy;
        p.maybe_zero = from.maybe_zero || (from.is_volatile && from.maybe_purged);
        p.access = snapshot ? R : from.access;
        p.max_access = snapshot ? R : from.max_access;
        p.was_writable = p.access & W;
        p.was_executable = p.access & X;
        if (from.own)
            p.own = std::make_unique<Bytes>(*from.own);
        p.epoch = ++s.epoch;
        check_page(to + i);
        check_page(first + i);
    }
    if (snapshot) {
        State::Snapshot record { to, first, count, {} };
        for (size_t i = 0; i < count; ++i)
            record.epochs.push_back(s.pages[to + i].epoch), record.epochs.push_back(s.pages[first + i].epoch);
        s.snapshots.push_back(std::move(record));
    }
}

// faultline_rollback (docs/cow.md) of a region to a snapshot: the region
// reads the snapshot's bytes again; or the documented error. The region and
// snapshot are mostly taken from this input's snapshots, so that rollbacks
// succeed often; a pair whose regions may have been split or replaced since
// may be refused with EINVAL.
void op_rollback(Input& in, uintptr_t picked)
{
    const bool recorded = !s.snapshots.empty() && in.u8() % 4 != 0;
    const State::Snapshot* pair = recorded ? &s.snapshots[in.u8() % s.snapshots.size()] : nullptr;
    const uintptr_t a = pair && in.u8() % 8 ? s.base + pair->source * kPage : picked;
    const uintptr_t snap = pair && in.u8() % 8 ? s.base + pair->snapshot * kPage : pick_address(in);
    Expect e;
    e.may_fail_with = { ENOMEM };
    auto region_start = [](uintptr_t x, faultline_region_stats* st) {
        if (x < s.base || x >= arena_end() || !s.pages[(x - s.base) / kPage].mapped)
            return ENOENT;
        FUZZ_CHECK(faultline_get_region_stats(s.rt, reinterpret_cast<void*>(x), st) == 0, "%s", faultline_last_error());
        return st->base == x ? 0 : EINVAL;
    };
    faultline_region_stats rs {}, ss {};
    const int region_error = region_start(a, &rs), snapshot_error = region_start(snap, &ss);
    const State::Snapshot* known = nullptr;
    for (const auto& r : s.snapshots)
        if (s.base + r.snapshot * kPage == snap && s.base + r.source * kPage == a)
            known = &r;
    bool unchanged = false;
    if (known) {
        unchanged = true;
        for (size_t i = 0; i < known->count; ++i)
            unchanged = unchanged && s.pages[known->snapshot + i].epoch == known->epochs[2 * i]
                && s.pages[known->source + i].epoch == known->epochs[2 * i + 1];
    }
    if (region_error == ENOENT || snapshot_error == ENOENT) {
        e.add(ENOENT);
    } else if (region_error || snapshot_error) {
        e.add(EINVAL);
    } else if (!known) {
        e.add(EINVAL);
    } else if (unchanged) {
        if (s.pages[known->source].immutable)
            e.add(EPERM);
    } else {
        // Split, replaced or rolled back since: the runtime may or may not
        // still know the pair.
        e.may_fail_with = { ENOMEM, EINVAL, EPERM };
    }
    const int rc = faultline_rollback(s.rt, reinterpret_cast<void*>(a), reinterpret_cast<void*>(snap));
    if (trace)
        std::fprintf(stderr, "  rollback %#lx to %#lx: %d\n", a, snap, rc);
    check_outcome("faultline_rollback", rc, e);
    if (rc != 0)
        return;
    FUZZ_CHECK(known, "a rollback the model knows nothing of succeeded");
    FUZZ_CHECK(rs.size == ss.size, "rolled back a region of %#zx bytes to a snapshot of %#zx", size_t(rs.size), size_t(ss.size));
    for (size_t i = 0; i < known->count; ++i) {
        Page& p = s.pages[known->source + i];
        const Page& from = s.pages[known->snapshot + i];
        p.own = from.own ? std::make_unique<Bytes>(*from.own) : nullptr;
        p.private_copy = from.private_copy;
        p.maybe_zero = from.maybe_zero || (from.is_volatile && from.maybe_purged);
        p.epoch = ++s.epoch; // the region may be a new one now
        check_page(known->source + i);
        check_page(known->snapshot + i);
    }
}

} // namespace fuzz::capi
