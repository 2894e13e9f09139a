// tests/fuzz/c_api_model.h — the reference model of the c_api fuzz target:
// what every page of the runtime's (small) arena must hold and allow, and
// which errors a call may return.
//
// The model is kept page by page because every call of the C API works on
// whole pages; a page knows its kind, its access and W/X history, whether it
// is immutable, volatile or possibly purged, and its bytes — its own for
// anonymous, purgeable and written private file pages, the file's (shared
// by every file region, as the runtime's one cache per file is) otherwise.
#pragma once

#include <faultline/faultline.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace fuzz {

constexpr size_t kPage = 4096;
constexpr size_t kArenaPages = 64; // small, so that fuzzed addresses hit regions
constexpr size_t kFilePages = 16;

using Bytes = std::array<uint8_t, kPage>;

enum class Kind { Anonymous, Purgeable, FileShared, FilePrivate };

struct Page {
    bool mapped = false;
    Kind kind = Kind::Anonymous;
    unsigned access = 0;
    unsigned max_access = 0;
    bool was_writable = false;
    bool was_executable = false;
    bool immutable = false;
    bool is_volatile = false;
    bool maybe_purged = false;  // a purge ran while it was volatile
    bool maybe_zero = false;    // purged or not: set_nonvolatile's ranges did not fit
    size_t file_page = 0;       // file kinds: the page of the file it shows
    bool private_copy = false;  // FilePrivate: written, so its own bytes
    bool clonable = false;      // Anonymous, mapped with FAULTLINE_REGION_CLONABLE (or a clone)
    std::unique_ptr<Bytes> own; // Anonymous, Purgeable, a private copy; null = zeros
    uint64_t epoch = 0;         // changes with every call that may have split or replaced its region
};

inline bool has_unknown_access_bits(unsigned access)
{
    return access & ~unsigned(FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE | FAULTLINE_ACCESS_EXEC);
}

inline bool write_and_execute(unsigned access)
{
    return (access & FAULTLINE_ACCESS_WRITE) && (access & FAULTLINE_ACCESS_EXEC);
}

// Region::check_protect, restated: EPERM for immutable pages, EACCES beyond
// the maximum access or against W^X over the page's history.
inline int protect_error(const Page& p, unsigned access)
{
    if (p.immutable)
        return EPERM;
    if (access & ~p.max_access)
        return EACCES;
    if (write_and_execute(access) || ((access & FAULTLINE_ACCESS_EXEC) && p.was_writable)
        || ((access & FAULTLINE_ACCESS_WRITE) && p.was_executable))
        return EACCES;
    return 0;
}

// Region names: at most 79 printable bytes, none of [ ] \ $ `.
inline bool valid_name(const char* name)
{
    if (!name)
        return true;
    size_t n = 0;
    for (const char* c = name; *c; ++c, ++n) {
        unsigned char u = static_cast<unsigned char>(*c);
        if (u < 0x20 || u > 0x7e || u == '[' || u == ']' || u == '\\' || u == '$' || u == '`')
            return false;
    }
    return n <= 79;
}

} // namespace fuzz
