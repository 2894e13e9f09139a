// The c_api fuzz target's state and the helpers its operations share
// (tests/fuzz/c_api.cc has the overview; c_api_cow.cc the copy-on-write
// operations). One definition for both translation units: inline.
#pragma once

#include "c_api_model.h"
#include "fuzz_input.h"

#include <faultline/faultline.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace fuzz::capi {


constexpr unsigned R = FAULTLINE_ACCESS_READ, W = FAULTLINE_ACCESS_WRITE, X = FAULTLINE_ACCESS_EXEC;
constexpr unsigned kKnownFlags = FAULTLINE_REGION_SHARED | FAULTLINE_REGION_STACK | FAULTLINE_REGION_IMMUTABLE
    | FAULTLINE_REGION_PURGEABLE | FAULTLINE_REGION_NORESERVE | FAULTLINE_REGION_CLONABLE;
constexpr int kBadFd = 1 << 20; // never open

constexpr int kMaxRemakes = 100;

struct State {
    faultline_runtime_t rt = 0;
    uintptr_t base = 0;
    int fd_rw = -1, fd_ro = -1, fd_dir = -1;
    std::vector<Bytes> file; // the file's bytes, as every shared region sees them
    Page pages[kArenaPages];
    bool remake = true; // before the next input: a new runtime and file
    int remakes = 0;
    uint64_t epoch = 0;
    // Snapshots taken in this input: where, of which region, and the
    // epochs of both regions' pages then (a rollback to one is certain to
    // be accepted only while none changed).
    struct Snapshot {
        size_t snapshot = 0, source = 0, count = 0;
        std::vector<uint64_t> epochs;
    };
    std::vector<Snapshot> snapshots;
};
inline State s;

inline uintptr_t arena_end() { return s.base + kArenaPages * kPage; }
inline uint8_t* page_address(size_t i) { return reinterpret_cast<uint8_t*>(s.base + i * kPage); }

// A new runtime with a small arena, no purge budget and no pressure trigger
// (so that pages are purged only by faultline_purge), and a new file.
inline void remake()
{
    if (s.rt)
        FUZZ_CHECK(faultline_destroy(s.rt) == 0, "faultline_destroy: %s", faultline_last_error());
    for (Page& p : s.pages)
        p = Page {};
    faultline_config config {};
    config.arena_size = kArenaPages * kPage;
    config.handler_threads = 1;
    config.pressure_trigger = "";
    if (int rc = faultline_create(&config, &s.rt); rc != 0) {
        std::fprintf(stderr, "c_api fuzz target: faultline_create: %s (%s)\n", strerror(-rc), faultline_last_error());
        std::exit(1);
    }
    // The first page-sized map of an empty arena lands at its base (best
    // fit: the only free range, from its start); the C API has no other way
    // to tell where the arena is.
    void* first = nullptr;
    FUZZ_CHECK(faultline_map(s.rt, nullptr, kPage, R | W, 0, nullptr, &first) == 0, "%s", faultline_last_error());
    s.base = reinterpret_cast<uintptr_t>(first);
    FUZZ_CHECK(faultline_unmap(s.rt, first, kPage) == 0, "%s", faultline_last_error());

    for (int fd : { s.fd_rw, s.fd_ro, s.fd_dir })
        if (fd >= 0)
            close(fd);
    const char* tmp = getenv("TMPDIR");
    std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/faultline-fuzz-XXXXXX";
    s.fd_rw = mkstemp(path.data());
    FUZZ_CHECK(s.fd_rw >= 0, "mkstemp %s: %s", path.c_str(), strerror(errno));
    s.fd_ro = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    FUZZ_CHECK(s.fd_ro >= 0, "open %s: %s", path.c_str(), strerror(errno));
    unlink(path.c_str());
    s.fd_dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    s.file.assign(kFilePages, Bytes {});
    for (size_t p = 0; p < kFilePages; ++p) {
        for (size_t b = 0; b < kPage; ++b)
            s.file[p][b] = uint8_t(p * 31 + b * 7 + 1);
        FUZZ_CHECK(pwrite(s.fd_rw, s.file[p].data(), kPage, off_t(p * kPage)) == ssize_t(kPage), "pwrite");
    }
    s.remake = false;
    if (++s.remakes == kMaxRemakes)
        std::fprintf(stderr, "c_api fuzz target: %d runtimes made; no more immutable regions in this process\n",
                     kMaxRemakes);
}

// Whether this operation may make a region immutable: rarely (one in
// `odds`), and not at all once kMaxRemakes runtimes have been made.
inline bool allow_immutable(Input& in, uint8_t odds)
{
    return in.u8() % odds == 0 && s.remakes < kMaxRemakes;
}

// ---- what a page holds -------------------------------------------------

inline bool touchable(const Page& p)
{
    bool file = p.kind == Kind::FileShared || p.kind == Kind::FilePrivate;
    return p.mapped && (!file || p.file_page < kFilePages); // past the file's end: SIGBUS
}

inline const uint8_t* expected_bytes(const Page& p)
{
    static const Bytes zeros {};
    if (p.kind == Kind::FileShared || (p.kind == Kind::FilePrivate && !p.private_copy))
        return s.file[p.file_page].data();
    return p.own ? p.own->data() : zeros.data();
}

inline bool all_zero(const uint8_t* page)
{
    static const Bytes zeros {};
    return memcmp(page, zeros.data(), kPage) == 0;
}

inline void check_page(size_t i)
{
    const Page& p = s.pages[i];
    if (!touchable(p) || !(p.access & R))
        return;
    const uint8_t* mem = page_address(i);
    const uint8_t* want = expected_bytes(p);
    if (memcmp(mem, want, kPage) == 0)
        return;
    // A volatile page a purge may have dropped reads zeros until
    // set_nonvolatile says whether it was purged.
    if (((p.is_volatile && p.maybe_purged) || p.maybe_zero) && all_zero(mem))
        return;
    size_t at = 0;
    while (mem[at] == want[at])
        ++at;
    FUZZ_CHECK(false, "page %zu (kind %d, access %u) byte %zu is %#x, model %#x", i, int(p.kind), p.access, at, mem[at],
               want[at]);
}

inline void check_stats(size_t i)
{
    const Page& p = s.pages[i];
    faultline_region_stats st {};
    int rc = faultline_get_region_stats(s.rt, page_address(i), &st);
    if (!p.mapped) {
        FUZZ_CHECK(rc == -ENOENT, "region_stats of unmapped page %zu: %d", i, rc);
        return;
    }
    FUZZ_CHECK(rc == 0, "region_stats of page %zu: %d (%s)", i, rc, faultline_last_error());
    FUZZ_CHECK(st.base <= uintptr_t(page_address(i)) && uintptr_t(page_address(i)) - st.base < st.size
                   && st.base >= s.base && st.size <= arena_end() - st.base,
               "region_stats of page %zu: %#lx+%#zx", i, st.base, st.size);
    FUZZ_CHECK(st.access == p.access, "page %zu: access %u, model %u", i, st.access, p.access);
    FUZZ_CHECK(bool(st.flags & FAULTLINE_REGION_PURGEABLE) == (p.kind == Kind::Purgeable), "page %zu: flags %#x", i,
               st.flags);
    FUZZ_CHECK(bool(st.flags & FAULTLINE_REGION_IMMUTABLE) == p.immutable, "page %zu: flags %#x", i, st.flags);
}

// ---- decoding ------------------------------------------------------------

inline uintptr_t pick_address(Input& in)
{
    uint8_t mode = in.u8() % 16;
    if (mode < 12)
        return s.base + uintptr_t(long(in.u8() % (kArenaPages + 4)) - 2) * kPage;
    if (mode == 12)
        return s.base + in.u16(); // unaligned (mostly)
    if (mode == 13)
        return in.u64();
    if (mode == 14)
        return UINTPTR_MAX - uintptr_t(in.u8()) * kPage; // size overflows from here
    return 0;
}

inline size_t pick_size(Input& in)
{
    uint8_t mode = in.u8() % 16;
    if (mode < 12)
        return (1 + in.u8() % 16) * kPage;
    if (mode == 12)
        return 0;
    if (mode == 13)
        return in.u16();
    if (mode == 14)
        return in.u64();
    return (kArenaPages + in.u8() % 4) * kPage;
}

inline unsigned pick_access(Input& in)
{
    static const unsigned common[] = { R | W, R | W, R, R | X, 0, W, R | W | X, X };
    uint8_t a = in.u8();
    return a < 240 ? common[a % 8] : a; // unknown bits sometimes
}

inline const char* pick_name(Input& in)
{
    static const std::string long_ok(79, 'n'), too_long(80, 'n');
    static const char* names[] = { nullptr, "", "fuzz", "a b-c.d", long_ok.c_str(), too_long.c_str(), "br[ack]",
                                   "tab\tbed", "do$$ar", "back`quote" };
    return names[in.u8() % 10];
}

// The pages of a valid range, or false (and EINVAL expected) if the range
// is not page-aligned, overflows or leaves the arena.
inline bool range_pages(uintptr_t a, size_t n, size_t* first, size_t* count, Expect& e)
{
    if (n == 0 || a % kPage || n % kPage || a + n < a || a < s.base || a + n > arena_end()) {
        e.add(EINVAL);
        return false;
    }
    *first = (a - s.base) / kPage;
    *count = n / kPage;
    return true;
}

inline bool any_mapped(size_t first, size_t count)
{
    for (size_t i = first; i < first + count; ++i)
        if (s.pages[i].mapped)
            return true;
    return false;
}

// Whether `count` free pages aligned to `alignment` exist (what placement
// anywhere needs; RangeAllocator's best fit is its own target's business).
inline bool free_fit(size_t count, size_t alignment)
{
    for (size_t i = 0; i + count <= kArenaPages; ++i)
        if ((s.base + i * kPage) % alignment == 0 && !any_mapped(i, count))
            return true;
    return false;
}

// FUZZ_TRACE=1 in the environment prints every call, to read what a
// crash input does (./dev fuzz c_api INPUT).
inline const bool trace = getenv("FUZZ_TRACE") != nullptr;

inline void check_outcome(const char* call, int rc, const Expect& e)
{
    if (trace)
        std::fprintf(stderr, "  %s: %d\n", call, rc);
    FUZZ_CHECK(e.allows(rc), "%s returned %d (%s); the model expects %s%d", call, rc, rc < 0 ? faultline_last_error() : "",
               e.fails() ? "-" : "", e.fails() ? e.errors[0] : 0);
}

// ---- the operations ------------------------------------------------------

inline void set_mapped(size_t first, size_t count, Kind kind, unsigned access, unsigned max_access, bool immutable,
                size_t file_page)
{
    for (size_t i = first; i < first + count; ++i) {
        Page& p = s.pages[i];
        p = Page {};
        p.mapped = true;
        p.kind = kind;
        p.access = access;
        p.max_access = max_access;
        p.was_writable = access & W;
        p.was_executable = access & X;
        p.immutable = immutable;
        p.file_page = file_page + (i - first);
        p.epoch = ++s.epoch;
        s.remake |= immutable;
    }
}

// A successful map outside the model's reach (a stack and its guard page, an
// O_DIRECT file view) is unmapped at once: it must have gone to free pages,
// and the unmap must succeed and leave them free.
inline void unmap_unmodelled(void* at, size_t size)
{
    uintptr_t a = reinterpret_cast<uintptr_t>(at);
    FUZZ_CHECK(a >= s.base && a % kPage == 0 && a + size <= arena_end(), "mapped at %#lx+%#zx", a, size);
    FUZZ_CHECK(!any_mapped((a - s.base) / kPage, (size + kPage - 1) / kPage), "mapped over a region at %#lx", a);
    int rc = faultline_unmap(s.rt, at, (size + kPage - 1) & ~(kPage - 1));
    FUZZ_CHECK(rc == 0, "unmap of a fresh region: %d (%s)", rc, faultline_last_error());
}

// Placement shared by map and allocate_purgeable: the errors of the address
// and size, and on success where the region must be.
inline void expect_placement(uintptr_t a, size_t n, size_t alignment, Expect& e)
{
    if (n == 0 || n % kPage)
        e.add(EINVAL);
    if (n > kArenaPages * kPage)
        e.add(ENOMEM);
    if (a) {
        size_t first, count;
        if (range_pages(a, n, &first, &count, e) && any_mapped(first, count))
            e.add(EEXIST);
    } else if (n / kPage > kArenaPages || !free_fit(n / kPage, alignment)) {
        e.add(ENOMEM);
    }
}

// Copy-on-write operations (c_api_cow.cc).
void op_clone(Input& in);
void op_rollback(Input& in, uintptr_t picked);

} // namespace fuzz::capi
