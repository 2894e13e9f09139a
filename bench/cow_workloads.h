// bench/cow_workloads.h — the copy-on-write cases (docs/performance.md,
// "Copy-on-write"): clones of a clonable region against the kernel's own
// copy-on-write after fork(), and rollback to a snapshot against copying
// the region back from a saved copy.
#pragma once

#include "bench.h"

#include <faultline/runtime.h>

#include <memory>
#include <string>

namespace bench {

struct CowCase {
    Workload workload;
    std::unique_ptr<Mapper> faultline;
    std::unique_ptr<Mapper> baseline;
};

// clone_1g: a region of `bytes`, every page written (untimed). Timed: one
// Runtime::clone. Baseline: fork() of this process holding the same memory
// written (the child waits, then exits, untimed). ms per clone. The clone's
// bytes are checked (untimed).
CowCase clone_region(std::string name, size_t bytes, const faultline::Config& config);

// cow_write_after_clone: the region written, then cloned (untimed). Timed:
// the first write to every page of the original. Baseline: the first write
// to every page after fork() (the child alive, waiting). ns/page.
CowCase cow_write_after_clone(std::string name, size_t bytes, const faultline::Config& config);

// clone_written_10pct: the region written and frozen by a first clone, then
// 10% of its pages written again (untimed) — one run at the start, or with
// `scattered` every tenth page (past the chain's run limit: a flattened
// copy). Timed: a clone of it. Baseline: fork() of this process holding the
// same memory written. ms per clone; the clone's bytes are checked.
CowCase clone_written_10pct(std::string name, size_t bytes, bool scattered, const faultline::Config& config);

// rollback_10pct: the region written, a snapshot taken, then 10% of its
// pages written again (untimed). Timed: rollback to the snapshot. Baseline:
// memcpy of the whole region from a copy saved beforehand. ms. Every byte
// is checked afterwards.
CowCase rollback_10pct(std::string name, size_t bytes, const faultline::Config& config);

// clone_read_rss is not a timing: see clone_read_growth in cow_workloads.cc.
// The physical memory (AnonPages + Shmem of /proc/meminfo: a page shared by
// several mappings counts once) a reader of a clone of `bytes` adds, per
// thousand pages read, against a fork child reading the same memory.
// Returns a Result ready for the table (ratio 1 when both are 0).
Result clone_read_growth(std::string name, size_t bytes, const faultline::Config& config, unsigned runs);

} // namespace bench
