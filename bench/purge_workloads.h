// bench/purge_workloads.h — the purgeable-memory cases (docs/performance.md,
// "Purgeable memory").
#pragma once

#include "bench.h"

#include <faultline/runtime.h>

#include <memory>

namespace bench {

struct PurgeCase {
    Workload workload;
    std::unique_ptr<Mapper> faultline;
    std::unique_ptr<Mapper> baseline;
};

// purge_refault_1g: a region of `bytes`, every page written and then made
// volatile (untimed); timed: purge it all, make it non-volatile (which
// reports the whole range purged), and write one byte per page again.
// Baseline: MADV_DONTNEED of a native region whose pages were written, and
// the same writes. Milliseconds per repetition.
PurgeCase purge_refault(std::string name, size_t bytes, const faultline::Config& config);

// volatile_toggle_1m: set_volatile + set_nonvolatile of a resident 1 MiB
// range, `pairs` times. Baseline: two mprotect(2) calls on a native 1 MiB
// range (read-only, then read-write): the floor of a pair of system calls
// that change a range's state. Nanoseconds per pair.
PurgeCase volatile_toggle(std::string name, size_t bytes, size_t pairs, const faultline::Config& config);

} // namespace bench
