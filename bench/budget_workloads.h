// bench/budget_workloads.h — the memory budget's case: which pages the
// evictor keeps, Clock against FIFO, in the same runtime build and run.
#pragma once

#include "file_workloads.h"

namespace bench {

// `reads` page reads over the first `region_bytes` of the test file, 90% of
// them on a hot 10% of its pages and the rest anywhere, under a memory
// budget of a quarter of the region, the file's page cache dropped first.
// faultline side: EvictionPolicy::Clock (the default); baseline: the same
// runtime with EvictionPolicy::Fifo (umap's policy). ns/read.
FileCase file_budget_hotcold(std::string name, std::shared_ptr<TestFile> file, faultline::Config config,
    size_t region_bytes, size_t reads);

} // namespace bench
