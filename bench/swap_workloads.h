// bench/swap_workloads.h — the swap pager's cases (docs/performance.md, "The
// swap pager"): private anonymous memory under a memory budget, whose cold
// pages the runtime writes to its swap file and reads back on their next
// touch.
#pragma once

#include "bench.h"

#include <faultline/runtime.h>

#include <memory>
#include <string>

namespace bench {

struct SwapCase {
    // What the sides need while they run (the far cases' redis-servers):
    // first, so that it goes last.
    std::shared_ptr<void> servers;
    Workload workload;
    std::unique_ptr<Mapper> faultline;
    std::unique_ptr<Mapper> baseline;
    std::string setup; // what the baseline runs on, for the table (may be empty)
};

// budget_hotcold_heap: a faultline anonymous region of `region_bytes` under a
// budget of a quarter of it, every page written once (untimed; then the
// evictor is let finish). Timed: `accesses` accesses, 90% to a hot 10% of the
// pages (which fits in the budget) and the rest anywhere; each reads a word
// of its page and writes it back plus one. Every byte of every page is then
// checked. faultline side: EvictionPolicy::Clock; baseline: the same runtime
// with EvictionPolicy::Fifo. ns/access.
SwapCase budget_hotcold_heap(std::string name, size_t region_bytes, size_t accesses, faultline::Config config);

// budget_hotcold_heap/kernel_swap: the same accesses, faultline with Clock
// against the kernel's swap: a child process whose memory cgroup is limited
// to the budget, with a swap file swapped on for the case. Throws
// Unavailable (swap_mappers.h) where that cannot be set up.
SwapCase budget_hotcold_heap_kernel(std::string name, size_t region_bytes, size_t accesses, faultline::Config config);

// swap_in_rand: a faultline anonymous region of `region_bytes` under a
// budget of `budget_bytes`, every page written (untimed) and then swapped
// out but the budget's worth (untimed wait). Timed: one word read from each
// of region/page - budget/page pages not resident, in a fixed random order:
// every read a swap-in. Baseline: io_uring 4 KiB reads, one at a time, of as
// many pages of a file of the region's size freshly written (so in the page
// cache, like the swap file) in the swap file's directory. ns/page.
SwapCase swap_in_rand(std::string name, size_t region_bytes, size_t budget_bytes, faultline::Config config);

} // namespace bench
