// bench/umap_workloads.cc — umap_rand_read: file_rand_read_cold's loop, order and
// checks (bench/file_workloads.h, random_reads) through a region umap()
// mapped, so the two cases' figures compare directly: what the umap layer
// adds over a file region of the runtime's own API shows as the difference.
#include "umap_workloads.h"

#include "file_mappers.h"
#include "umap_mapper.h"

namespace bench {

FileCase umap_rand_read(std::string name, std::shared_ptr<TestFile> file, size_t reads)
{
    // file_rand_read_cold's order, loop and checks (no statistics: the umap
    // API has none), with a region umap() mapped as the faultline side.
    return random_reads(std::move(name), file, reads, std::make_unique<UmapMapper>(file), nullptr, "read through umap");
}

} // namespace bench
