// bench/umap_workloads.h — the umap-compatible API against raw io_uring.
#pragma once

#include "file_workloads.h"

namespace bench {

// umap-style random page reads: `reads` distinct pages of the test file in
// a fixed pseudo-random order (the same order as file_rand_read_cold),
// cold, through a region umap() mapped (UmapMapper). Baseline: io_uring
// 4 KiB reads of the same offsets, one at a time (UringReader), cold.
FileCase umap_rand_read(std::string name, std::shared_ptr<TestFile> file, size_t reads);

} // namespace bench
