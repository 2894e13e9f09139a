// bench/workloads.h — what each case does to a fresh region.
#pragma once

#include "bench.h"

namespace bench {

// Writes one byte per page, in address order.
Workload seq_first_touch(std::string name, size_t bytes);
// Writes one byte per page, in a fixed pseudo-random order (the same order
// for faultline and the baseline).
Workload rand_first_touch(std::string name, size_t bytes);
// `threads` threads each write one byte per page, in address order, over
// their own contiguous share of the region; timed from the first thread's
// start to the last thread's end (aggregate ns per page).
Workload mt_first_touch(std::string name, size_t bytes, unsigned threads);
// Reads one byte per page, in address order: every fault maps the zero page.
Workload read_zero(std::string name, size_t bytes);
// Writes one byte in every `stride_pages`-th page, `faults` times: isolated
// faults, each far from the last, timed per fault.
Workload sparse_touch(std::string name, size_t faults, size_t stride_pages);

} // namespace bench
