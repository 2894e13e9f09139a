// bench/far_workloads.h — far memory (docs/far-memory.md): the swap pager's
// cases with Redis as the swap target, against the local swap file and
// against hiredis alone. Each case starts its own redis-server(s) on free
// loopback ports in a temporary directory (tests/support/redis_servers.h)
// and kills them when the case is done; without redis-server (or, for the
// cluster, redis-cli) it throws Unavailable and is skipped, saying why.
#pragma once

#include "swap_workloads.h"

namespace bench {

// far_swap_in_rand: swap_in_rand (swap_workloads.h) with the swap in one
// local redis-server, against the same with the local swap file. ns/page.
SwapCase far_swap_in_rand(std::string name, size_t region_bytes, size_t budget_bytes, faultline::Config config);

// far_swap_in_rand/hiredis: the same faultline side against the floor:
// as many page-sized values as it reads, SET under keys of their own on the
// same server (untimed), then GET in the same random order with hiredis, in
// pipelines of 64 (the Redis target's own batch) — the network and Redis
// alone, no fault. ns/page.
SwapCase far_swap_in_rand_hiredis(std::string name, size_t region_bytes, size_t budget_bytes, faultline::Config config);

// far_heap_hotcold: budget_hotcold_heap's Clock side (a region 4x its
// budget, 90% of accesses on a hot tenth) with the swap in a local Redis
// Cluster of 3 masters (no replicas), against the same with the local swap
// file. ns/access (its inverse is the throughput).
SwapCase far_heap_hotcold(std::string name, size_t region_bytes, size_t accesses, faultline::Config config);

} // namespace bench
