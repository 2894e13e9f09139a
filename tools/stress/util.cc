// tools/stress/util.cc — failure reports and names for messages.
#include "util.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace stress {

namespace {

constexpr unsigned kMaxFailuresShown = 40;

std::mutex g_print_lock;

} // namespace

std::atomic<uint64_t> g_failures { 0 };

// Counts a failure and prints it (the first kMaxFailuresShown of them: one
// runtime bug tends to produce many reports, and the first ones matter).
void failure(const char* fmt, ...)
{
    uint64_t n = g_failures.fetch_add(1) + 1;
    if (n > kMaxFailuresShown + 1)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    std::lock_guard lock(g_print_lock);
    if (n == kMaxFailuresShown + 1)
        std::fprintf(stderr, "stress: further failures are counted but not shown\n");
    else
        std::fprintf(stderr, "stress: FAIL: %s\n", buf);
    std::fflush(stderr);
}

const char* access_name(Access a)
{
    switch (uint8_t(a)) {
    case 0: return "---";
    case 1: return "r--";
    case 2: return "-w-";
    case 3: return "rw-";
    case 4: return "--x";
    case 5: return "r-x";
    case 6: return "-wx";
    case 7: return "rwx";
    default: return "???";
    }
}

const char* errno_name(int e)
{
    switch (e) {
    case 0: return "success";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EEXIST: return "EEXIST";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOMEM: return "ENOMEM";
    default: return strerror(e);
    }
}

} // namespace stress
