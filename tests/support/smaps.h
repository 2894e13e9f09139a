// What /proc/self/smaps says about a range: the tests of copy-on-write
// measure with it that pages are shared, not copied.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace faultline::testing {

// kB of private anonymous memory (the kernel's copies) in the mappings of
// [base, base+size): what a region holds of its own. A page shared with a
// file (a frozen memfd, a file's cache) is file memory and not counted.
inline long anonymous_kb(const void* base, size_t size)
{
    std::ifstream f("/proc/self/smaps");
    std::string line;
    const uintptr_t lo = uintptr_t(base), hi = lo + size;
    bool inside = false;
    long total = 0;
    while (std::getline(f, line)) {
        unsigned long start, end;
        if (sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 && line.find('-') < line.find(' ')) {
            inside = start < hi && end > lo;
            continue;
        }
        long kb;
        if (inside && sscanf(line.c_str(), "Anonymous: %ld kB", &kb) == 1)
            total += kb;
    }
    return total;
}

} // namespace faultline::testing
