// Fuzz target `c_api`: the public C API (include/faultline/faultline.h) as an
// operation sequence — map, allocate_purgeable, map_file, unmap, protect,
// set_name, make_immutable, sync, set_volatile, set_nonvolatile, clone,
// snapshot, rollback,
// purge, region stats and to_json, with arbitrary sizes, addresses (in and
// around the arena, unaligned, overflowing) and flags — checked against the
// page model of c_api_model.h:
//   - a call succeeds exactly when the model says it must, and a failing one
//     returns an errno docs/api.md lists for a condition that holds;
//   - memory reads back what was written (the file's bytes where a file
//     region was not written, shared file regions seeing each other's
//     writes), kept across protect, set_name, unmap of other pages and
//     failed calls; purged pages (zeros) only where set_nonvolatile
//     reported them;
//   - region stats agree with the model (access, purgeable, immutable).
// Touching memory goes through the runtime's fault path; a hang there is
// caught by libFuzzer's -timeout (./dev fuzz sets it).
//
// One runtime serves every input (creating one per input would cost more
// than the input): each input starts on an empty arena because the previous
// one unmapped everything. Immutable regions can never be unmapped, so after
// an input that made one the runtime (and the file) is made anew. Sealed
// regions outlive their runtime (docs/api.md, faultline_destroy), and each
// runtime destroyed with one leaves mappings behind for good: immutable
// regions are rare, and after kMaxRemakes runtimes the target makes no more
// of them. With a cap of 1,000 a 15-minute run reached vm.max_map_count
// (every mmap failed); with none made the count stays flat.
#include "c_api_state.h"

#include <faultline/faultline.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace fuzz;

using namespace fuzz::capi;

namespace {

void op_map(Input& in)
{
    uintptr_t a = pick_address(in);
    size_t n = pick_size(in);
    unsigned access = pick_access(in);
    static const unsigned common[] = { 0, 0, FAULTLINE_REGION_PURGEABLE, FAULTLINE_REGION_SHARED,
                                       FAULTLINE_REGION_NORESERVE, FAULTLINE_REGION_STACK, FAULTLINE_REGION_CLONABLE };
    uint8_t f = in.u8();
    unsigned flags = f < 240 ? common[f % 7] : in.u8() & (f & 1 ? kKnownFlags : 0xff);
    // Immutable rarely (each costs a new runtime); never on a stack,
    // which the model does not follow and unmaps at once.
    if (flags & FAULTLINE_REGION_IMMUTABLE && (!allow_immutable(in, 16) || flags & FAULTLINE_REGION_STACK))
        flags &= ~FAULTLINE_REGION_IMMUTABLE;
    const char* name = pick_name(in);
    bool null_out = in.u8() == 0;

    Expect e;
    if (null_out || has_unknown_access_bits(access) || (flags & ~kKnownFlags) || !valid_name(name))
        e.add(EINVAL);
    if (write_and_execute(access))
        e.add(EACCES);
    if ((flags & FAULTLINE_REGION_PURGEABLE) && (flags & (FAULTLINE_REGION_SHARED | FAULTLINE_REGION_STACK)))
        e.add(EINVAL);
    if ((flags & FAULTLINE_REGION_CLONABLE)
        && (flags & (FAULTLINE_REGION_SHARED | FAULTLINE_REGION_STACK | FAULTLINE_REGION_PURGEABLE)))
        e.add(EINVAL);
    expect_placement(a, n, kPage, e);
    const bool stack = flags & FAULTLINE_REGION_STACK;
    if (stack) // the guard page below: taken, or outside the arena
        e.may_fail_with = { EEXIST, EINVAL, ENOMEM };

    void* out = nullptr;
    int rc = faultline_map(s.rt, reinterpret_cast<void*>(a), n, access, flags, name, null_out ? nullptr : &out);
    if (trace) fprintf(stderr, "  map %#lx+%#zx access %u flags %#x -> %p\n", a, n, access, flags, out);
    check_outcome("faultline_map", rc, e);
    if (rc != 0)
        return;
    uintptr_t at = reinterpret_cast<uintptr_t>(out);
    FUZZ_CHECK(!a || at == a, "faultline_map at %#lx gave %#lx", a, at);
    if (stack) {
        unmap_unmodelled(out, n);
        return;
    }
    FUZZ_CHECK(at >= s.base && at % kPage == 0 && at + n <= arena_end() && !any_mapped((at - s.base) / kPage, n / kPage),
               "faultline_map gave %#lx+%#zx, not free", at, n);
    set_mapped((at - s.base) / kPage, n / kPage, flags & FAULTLINE_REGION_PURGEABLE ? Kind::Purgeable : Kind::Anonymous,
               access, access, flags & FAULTLINE_REGION_IMMUTABLE, 0);
    for (size_t i = (at - s.base) / kPage; i < (at - s.base + n) / kPage; ++i)
        s.pages[i].clonable = flags & FAULTLINE_REGION_CLONABLE;
}

void op_allocate_purgeable(Input& in)
{
    size_t n = pick_size(in);
    faultline_purgeable_options o {};
    bool with_options = in.flag();
    uint8_t al = in.u8();
    o.alignment = al < 200 ? (al % 3 == 0 ? 0 : kPage << (al % 5)) : 3 * kPage;
    o.address = in.flag() ? reinterpret_cast<void*>(pick_address(in)) : nullptr;
    o.access = pick_access(in);
    o.flags = in.u8() < 220 ? FAULTLINE_REGION_PURGEABLE : in.u8() & kKnownFlags & ~FAULTLINE_REGION_IMMUTABLE;
    o.name = pick_name(in);
    uint8_t pa = in.u8();
    o.purged_access = pa < 230 ? FAULTLINE_PURGED_ZERO : pa < 240 ? FAULTLINE_PURGED_CALLBACK : 7;
    if (!with_options)
        o = faultline_purgeable_options {};

    const unsigned access = o.access ? o.access : R | W;
    const size_t alignment = o.alignment ? o.alignment : kPage;
    Expect e;
    if (has_unknown_access_bits(o.access) || (o.flags & ~kKnownFlags) || !valid_name(o.name) || o.purged_access > 2
        || (o.flags & (FAULTLINE_REGION_SHARED | FAULTLINE_REGION_STACK | FAULTLINE_REGION_CLONABLE)) || (alignment & (alignment - 1)))
        e.add(EINVAL);
    if (o.purged_access == FAULTLINE_PURGED_CALLBACK) // without on_purged_access
        e.add(EINVAL);
    if (write_and_execute(access))
        e.add(EACCES);
    expect_placement(uintptr_t(o.address), n, alignment & (alignment - 1) ? kPage : alignment, e);
    if (o.address && uintptr_t(o.address) % alignment)
        e.may_fail_with = { EINVAL }; // a fixed address off the alignment: not documented either way

    void* out = nullptr;
    int rc = faultline_allocate_purgeable(s.rt, n, with_options ? &o : nullptr, &out);
    check_outcome("faultline_allocate_purgeable", rc, e);
    if (rc != 0)
        return;
    uintptr_t at = reinterpret_cast<uintptr_t>(out);
    FUZZ_CHECK(!o.address || out == o.address, "allocate_purgeable at %p gave %p", o.address, out);
    FUZZ_CHECK(at >= s.base && at % alignment == 0 && at + n <= arena_end() && !any_mapped((at - s.base) / kPage, n / kPage),
               "allocate_purgeable gave %#lx+%#zx, not free or not aligned to %#zx", at, n, alignment);
    set_mapped((at - s.base) / kPage, n / kPage, Kind::Purgeable, access, access, false, 0);
}

void op_map_file(Input& in)
{
    uint8_t which = in.u8() % 8;
    int fd = which < 5 ? s.fd_rw : which == 5 ? s.fd_ro : which == 6 ? s.fd_dir : (in.flag() ? -1 : kBadFd);
    uint8_t om = in.u8() % 8;
    int64_t offset = om < 6 ? int64_t(in.u8() % (kFilePages + 2)) * int64_t(kPage)
        : om == 6 ? -int64_t(kPage) * (1 + in.u8() % 2) + (in.flag() ? 1 : 0)
                  : int64_t(in.u64() >> (in.u8() % 64));
    size_t length = in.u8() < 220 ? (1 + in.u8() % 20) * kPage - (in.flag() ? in.u16() % kPage : 0) : pick_size(in);
    unsigned access = pick_access(in);
    uint8_t fm = in.u8();
    unsigned flags = fm < 120 ? FAULTLINE_FILE_SHARED : fm < 240 ? FAULTLINE_FILE_PRIVATE : fm;
    const char* name = pick_name(in);

    Expect e;
    const bool shared = !(flags & FAULTLINE_FILE_PRIVATE);
    if (has_unknown_access_bits(access) || (flags & ~unsigned(FAULTLINE_FILE_PRIVATE | FAULTLINE_FILE_DIRECT_IO))
        || !valid_name(name) || length == 0 || offset < 0 || offset % int64_t(kPage))
        e.add(EINVAL);
    if (fd == -1 || fd == kBadFd)
        e.add(EBADF);
    if (fd == s.fd_dir)
        e.add(ENODEV);
    if (write_and_execute(access) || (shared && fd == s.fd_ro && (access & W)))
        e.add(EACCES);
    constexpr uint64_t kMaxFile = uint64_t(16) << 40;
    if (offset >= 0 && (uint64_t(length) > kMaxFile || uint64_t(offset) + length > kMaxFile))
        e.add(EOVERFLOW);
    const size_t pages = length / kPage + (length % kPage != 0);
    if (length > SIZE_MAX - kPage || pages > kArenaPages || !free_fit(pages, kPage))
        e.add(ENOMEM);
    const bool direct = flags & FAULTLINE_FILE_DIRECT_IO;
    if (direct) // the file system may refuse O_DIRECT
        e.may_fail_with = { EINVAL };

    void* out = nullptr;
    int rc = faultline_map_file(s.rt, fd, offset, length, access, flags, name, &out);
    check_outcome("faultline_map_file", rc, e);
    if (rc != 0)
        return;
    if (direct) {
        unmap_unmodelled(out, length);
        return;
    }
    uintptr_t at = reinterpret_cast<uintptr_t>(out);
    FUZZ_CHECK(at >= s.base && at % kPage == 0 && at + pages * kPage <= arena_end()
                   && !any_mapped((at - s.base) / kPage, pages),
               "faultline_map_file gave %#lx+%zu pages, not free", at, pages);
    const unsigned max_access = shared && fd == s.fd_ro ? R | X : R | W | X;
    set_mapped((at - s.base) / kPage, pages, shared ? Kind::FileShared : Kind::FilePrivate, access, max_access, false,
               size_t(offset) / kPage);
}

// The operations on a range of mapped pages share their checks: the range,
// coverage, immutability, and each call's own conditions (`page_error`);
// `apply` updates the model of each page after success.
template <typename Call, typename PageError, typename Apply>
void range_op(const char* name, uintptr_t a, size_t n, Expect e, Call call, PageError page_error, Apply apply)
{
    size_t first = 0, count = 0;
    if (range_pages(a, n, &first, &count, e)) {
        for (size_t i = first; i < first + count; ++i) {
            const Page& p = s.pages[i];
            if (!p.mapped)
                e.add(ENOENT);
            else if (int err = page_error(p))
                e.add(err);
        }
    }
    int rc = call();
    if (trace)
        std::fprintf(stderr, "  pages %zu+%zu (%#lx+%#zx):", first, count, a, n);
    check_outcome(name, rc, e);
    if (rc < 0)
        return;
    for (size_t i = first; i < first + count; ++i) {
        apply(s.pages[i]);
        s.pages[i].epoch = ++s.epoch;
        check_page(i);
    }
}

int immutable_error(const Page& p) { return p.immutable ? EPERM : 0; }

void op_write(Input& in)
{
    size_t i = in.u8() % kArenaPages;
    Page& p = s.pages[i];
    size_t off = in.u16() % kPage;
    size_t len = std::min<size_t>(kPage - off, 1 + in.u16() % kPage);
    uint8_t value = in.u8();
    // Only where a write is allowed and its result is defined: not a
    // volatile page (a purge may drop it at any time).
    if (!touchable(p) || !(p.access & W) || p.is_volatile)
        return;
    if (p.maybe_zero) {
        // Purged or not is settled before the write changes part of it.
        check_page(i);
        if (all_zero(page_address(i)))
            p.own.reset();
        p.maybe_zero = false;
    }
    if (trace)
        std::fprintf(stderr, "  write page %zu bytes %zu+%zu = %#x\n", i, off, len, value);
    memset(page_address(i) + off, value, len);
    Bytes* bytes;
    if (p.kind == Kind::FileShared) {
        bytes = &s.file[p.file_page];
    } else {
        if (p.kind == Kind::FilePrivate && !p.private_copy) {
            p.own = std::make_unique<Bytes>(s.file[p.file_page]);
            p.private_copy = true;
        }
        if (!p.own)
            p.own = std::make_unique<Bytes>();
        bytes = p.own.get();
    }
    memset(bytes->data() + off, value, len);
}

void op_set_nonvolatile(uintptr_t a, size_t n, Input& in)
{
    faultline_page_range ranges[kArenaPages] {};
    size_t capacity = in.flag() ? kArenaPages : in.u8() % 3;
    size_t count = SIZE_MAX;
    int rc = 0;
    range_op(
        "faultline_set_nonvolatile", a, n, {},
        [&] { return rc = faultline_set_nonvolatile(s.rt, reinterpret_cast<void*>(a), n, ranges, capacity, &count); },
        [](const Page& p) { return p.immutable ? EPERM : p.kind != Kind::Purgeable ? EINVAL : 0; },
        [](Page&) {});
    if (rc < 0)
        return;
    if (trace)
        std::fprintf(stderr, "  %zu purged ranges, capacity %zu\n", count, capacity);
    FUZZ_CHECK(rc == 0 || rc == 1, "set_nonvolatile returned %d", rc);
    FUZZ_CHECK((rc == 1) == (count > 0), "set_nonvolatile returned %d with %zu ranges", rc, count);
    // Reported pages: inside the range, in address order, coalesced, and
    // only pages that were volatile while a purge ran. They read zeros now.
    // Past `capacity` the ranges are counted but not written: the pages a
    // purge may have dropped read either their bytes or zeros from now on.
    if (count > capacity)
        for (uintptr_t q = a; q < a + n; q += kPage) {
            Page& p = s.pages[(q - s.base) / kPage];
            p.maybe_zero |= p.is_volatile && p.maybe_purged;
        }
    uintptr_t last_end = 0;
    for (size_t k = 0; k < std::min(count, capacity); ++k) {
        uintptr_t ra = reinterpret_cast<uintptr_t>(ranges[k].address);
        size_t rn = ranges[k].size;
        FUZZ_CHECK(rn > 0 && ra % kPage == 0 && rn % kPage == 0 && ra >= a && ra + rn <= a + n && ra > last_end,
                   "purged range %zu: %#lx+%#zx in %#lx+%#zx", k, ra, rn, a, n);
        last_end = ra + rn;
        for (uintptr_t q = ra; q < ra + rn; q += kPage) {
            Page& p = s.pages[(q - s.base) / kPage];
            FUZZ_CHECK(p.is_volatile && p.maybe_purged, "page %#lx reported purged: volatile %d, purge since %d", q,
                       p.is_volatile, p.maybe_purged);
            p.own.reset();
            p.maybe_zero = false;
        }
    }
    for (uintptr_t q = a; q < a + n; q += kPage) {
        Page& p = s.pages[(q - s.base) / kPage];
        p.is_volatile = p.maybe_purged = false;
        check_page((q - s.base) / kPage);
    }
}

void one_operation(Input& in)
{
    const uint8_t op = in.u8() % 21;
    if (op == 20) {
        op_clone(in);
        return;
    }
    if (op < 4) {
        op_map(in);
        return;
    }
    if (op == 4) {
        op_allocate_purgeable(in);
        return;
    }
    if (op == 5) {
        op_map_file(in);
        return;
    }
    if (op < 9) {
        op_write(in);
        return;
    }
    const uintptr_t a = pick_address(in);
    const size_t n = pick_size(in);
    void* const at = reinterpret_cast<void*>(a);
    switch (op) {
    case 9:
        range_op("faultline_unmap", a, n, {}, [&] { return faultline_unmap(s.rt, at, n); }, immutable_error,
                 [](Page& p) { p = Page {}; });
        break;
    case 10: {
        unsigned access = pick_access(in);
        Expect e;
        if (has_unknown_access_bits(access))
            e.add(EINVAL);
        range_op("faultline_protect", a, n, e, [&] { return faultline_protect(s.rt, at, n, access); },
                 [&](const Page& p) { return protect_error(p, access); },
                 [&](Page& p) {
                     p.access = access;
                     p.was_writable |= bool(access & W);
                     p.was_executable |= bool(access & X);
                 });
        break;
    }
    case 11: {
        const char* name = pick_name(in);
        Expect e;
        if (!valid_name(name))
            e.add(EINVAL);
        range_op("faultline_set_name", a, n, e, [&] { return faultline_set_name(s.rt, at, n, name); }, immutable_error,
                 [](Page&) {});
        break;
    }
    case 12:
        if (allow_immutable(in, 64)) // each one costs a new runtime
            range_op("faultline_make_immutable", a, n, {}, [&] { return faultline_make_immutable(s.rt, at, n); },
                     immutable_error, [](Page& p) { p.immutable = s.remake = true; });
        break;
    case 13:
        // discard (docs/api.md): anonymous and purgeable pages read zeros
        // again, a private file page the file's bytes, a shared file page
        // keeps what it holds (its pages are the file's).
        range_op("faultline_discard", a, n, {}, [&] { return faultline_discard(s.rt, at, n); }, immutable_error,
            [](Page& p) {
                if (p.kind == Kind::FileShared)
                    return;
                p.own.reset();
                p.private_copy = false;
            });
        break;
    case 14: {
        uint8_t fm = in.u8();
        unsigned flags = fm < 240 ? (fm % 2 ? FAULTLINE_SYNC : FAULTLINE_ASYNC) | (fm & 4 ? FAULTLINE_INVALIDATE : 0) : fm;
        Expect e;
        if ((flags & ~7u) || ((flags & FAULTLINE_SYNC) && (flags & FAULTLINE_ASYNC)))
            e.add(EINVAL);
        e.may_fail_with = { EPERM }; // immutable regions: not documented either way
        range_op("faultline_sync", a, n, e, [&] { return faultline_sync(s.rt, at, n, flags); },
                 [](const Page& p) {
                     return p.kind == Kind::FileShared || p.kind == Kind::FilePrivate ? 0 : EINVAL;
                 },
                 [](Page&) {});
        break;
    }
    case 15: {
        unsigned priority = in.u8() % 5;
        Expect e;
        if (priority > FAULTLINE_PURGE_HIGH)
            e.add(EINVAL);
        range_op("faultline_set_volatile", a, n, e, [&] { return faultline_set_volatile(s.rt, at, n, priority); },
                 [](const Page& p) { return p.immutable ? EPERM : p.kind != Kind::Purgeable ? EINVAL : 0; },
                 [](Page& p) { p.is_volatile = true; });
        break;
    }
    case 16:
        op_set_nonvolatile(a, n, in);
        break;
    case 17: {
        uint8_t b = in.u8();
        size_t bytes = b < 100 ? FAULTLINE_PURGE_ALL : b < 110 ? 0 : (b % 8) * kPage;
        size_t purged = SIZE_MAX, volatile_pages = 0;
        int rc = faultline_purge(s.rt, bytes, &purged);
        if (trace)
            std::fprintf(stderr, "  purge %zu bytes: %zu purged\n", bytes, purged);
        check_outcome("faultline_purge", rc, bytes == 0 ? Expect { { EINVAL }, {} } : Expect {});
        if (rc != 0)
            break;
        for (Page& p : s.pages) {
            p.maybe_purged |= p.is_volatile;
            volatile_pages += p.is_volatile;
        }
        FUZZ_CHECK(purged <= volatile_pages * kPage, "purged %zu bytes of %zu volatile pages", purged, volatile_pages);
        break;
    }
    case 18: {
        faultline_region_stats st {};
        int rc = faultline_get_region_stats(s.rt, at, &st);
        bool inside = a >= s.base && a < arena_end();
        if (inside && s.pages[(a - s.base) / kPage].mapped)
            FUZZ_CHECK(rc == 0, "region_stats(%#lx): %d", a, rc);
        else
            FUZZ_CHECK(rc == -ENOENT || (!inside && rc == -EINVAL), "region_stats(%#lx) of no region: %d", a, rc);
        if (inside)
            check_stats((a - s.base) / kPage);
        break;
    }
    case 19: {
        size_t len = in.u16() % 8192;
        std::string buf(len + 1, '\x7f');
        long rc = faultline_to_json(s.rt, buf.data(), len);
        FUZZ_CHECK(rc >= 0, "faultline_to_json: %ld", rc);
        FUZZ_CHECK(buf[len] == '\x7f', "faultline_to_json wrote past %zu bytes", len);
        if (len > 0)
            FUZZ_CHECK(strlen(buf.c_str()) == std::min<size_t>(size_t(rc), len - 1),
                       "faultline_to_json: %zu bytes before the NUL, length %ld, buffer %zu", strlen(buf.c_str()), rc, len);
        break;
    }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (s.remake)
        remake();
    Input in(data, size);
    s.snapshots.clear();
    for (int ops = 0; !in.done() && ops < 64; ++ops)
        one_operation(in);
    for (size_t i = 0; i < kArenaPages; ++i) {
        check_page(i);
        check_stats(i);
    }
    // Back to an empty arena: unmap every run of mutable pages.
    for (size_t i = 0; i < kArenaPages;) {
        if (!s.pages[i].mapped || s.pages[i].immutable) {
            s.remake |= s.pages[i].immutable;
            ++i;
            continue;
        }
        size_t j = i;
        while (j < kArenaPages && s.pages[j].mapped && !s.pages[j].immutable)
            ++j;
        int rc = faultline_unmap(s.rt, page_address(i), (j - i) * kPage);
        FUZZ_CHECK(rc == 0, "unmapping pages %zu-%zu after the input: %d (%s)", i, j, rc, faultline_last_error());
        for (size_t k = i; k < j; ++k)
            s.pages[k] = Page {};
        i = j;
    }
    // Nothing else may be left: with no immutable page the whole arena is
    // free again (a guard page or a range a failed call kept would show here,
    // in the input that left it, not in a later one).
    if (!s.remake) {
        void* all = nullptr;
        int rc = faultline_map(s.rt, page_address(0), kArenaPages * kPage, R, FAULTLINE_REGION_NORESERVE, nullptr, &all);
        FUZZ_CHECK(rc == 0, "the emptied arena is not free: %d (%s)", rc, faultline_last_error());
        FUZZ_CHECK(faultline_unmap(s.rt, all, kArenaPages * kPage) == 0, "%s", faultline_last_error());
    }
    return 0;
}
