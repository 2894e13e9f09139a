// bench/preload_workloads.h — unmodified programs under the preloaded heap
// (libfaultline_malloc.so) against the same programs with glibc's malloc
// (docs/performance.md, "The preloaded heap").
#pragma once

#include "bench.h"

#include <memory>
#include <string>

namespace bench {

struct PreloadCase {
    Workload workload;
    std::unique_ptr<Mapper> faultline;
    std::unique_ptr<Mapper> baseline;
};

// The programs, each a /bin/sh script run in a scratch directory (its
// input made untimed first). `scale` sizes the input (1 = full size).
enum class Program { Python, Sqlite, Xz, Sort };

// Wall milliseconds of one run of the program with the heap preloaded;
// baseline: the same run without it. Every run's output must equal the
// first plain run's, and every exit status must be 0.
PreloadCase preload_program(std::string name, Program program, unsigned scale);

// Where libfaultline_malloc.so is (built beside the bench); empty if absent.
std::string preload_library();

} // namespace bench
