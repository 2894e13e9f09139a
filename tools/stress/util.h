// tools/stress/util.h — small utilities every part of faultline-stress uses:
// the clock, the random numbers, failure reports and names for messages.
#pragma once

#include <faultline/runtime.h>

#include <atomic>
#include <cstdint>
#include <ctime>

namespace stress {

// The tool is written against the public API only, and names its types
// unqualified throughout.
using namespace faultline;

inline int64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// splitmix64: tiny, fast, and good enough to pick operations.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed) {}
    uint64_t next()
    {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    unsigned below(unsigned n) { return unsigned(next() % n); }
    bool percent(unsigned p) { return below(100) < p; }
};

// Failures counted so far, over all phases.
extern std::atomic<uint64_t> g_failures;

// Counts a failure and prints it (the first few dozen of them: one runtime
// bug tends to produce many reports, and the first ones matter).
__attribute__((format(printf, 1, 2))) void failure(const char* fmt, ...);

const char* access_name(Access a);
const char* errno_name(int e);

// On x86-64 (and the other targets Debian runs this on) write and execute
// permission imply read; the tool only ever uses ---, r--, rw- and r-x.
inline bool readable(Access a) { return a != Access::None; }
inline bool writable(Access a) { return has(a, Access::Write); }

// Region names the mutators give; index 0 is "no name". The first
// kNameCount are drawn at random; the last is only ever given to Clonable
// regions (mutator/map_clonable.cc), whose memfds are named after them, so
// that the memfds left behind after every clone is unmapped can be counted
// (main.cc).
constexpr const char* kNames[] = { "", "stress", "stress-a", "stress-b", "x", "stress-a-rather-longer-name-0123456789", "stress-cow" };
constexpr unsigned kNameCount = sizeof kNames / sizeof kNames[0] - 1;
constexpr unsigned kCowName = kNameCount;

} // namespace stress
