// bench/umap_mapper.cc — umap() and uunmap() of the test file.
#include "umap_mapper.h"

#include <umap/umap.h>

#include <cerrno>
#include <cstring>

namespace bench {

char* UmapMapper::map(size_t bytes, bool)
{
    file_->drop_cache();
    // umap lengths are whole umap pages (UMAP_PAGESIZE may be set).
    const uint64_t psize = umapcfg_get_umap_page_size();
    if (bytes % psize)
        fail("the test file is not a whole number of umap pages (UMAP_PAGESIZE=" + std::to_string(psize) + ")");
    void* p = umap(nullptr, bytes, PROT_READ, UMAP_PRIVATE, file_->read_fd(), 0);
    if (p == UMAP_FAILED)
        fail("umap of the test file failed: " + std::string(strerror(errno)));
    return static_cast<char*>(p);
}

void UmapMapper::unmap(char* base, size_t bytes)
{
    if (uunmap(base, bytes) != 0)
        fail("uunmap failed: " + std::string(strerror(errno)));
}

} // namespace bench
