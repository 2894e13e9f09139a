// bench/umap_mapper.h — the test file through the umap-compatible API
// (<umap/umap.h>, libfaultline-umap), exactly as a program written for umap
// maps it: umap(NULL, size, PROT_READ, UMAP_PRIVATE, fd, 0) and uunmap().
//
// Unlike FileRegionMapper there is no runtime per repetition: umap has one
// per process, created at the first umap() from the UMAP_* environment
// (unset: umap's defaults). Each repetition is still cold: map() drops the
// kernel's page cache of the file, and uunmap() of the file's only region
// frees the runtime's cache of it.
#pragma once

#include "bench.h"
#include "test_file.h"

#include <memory>

namespace bench {

class UmapMapper final : public Mapper {
public:
    explicit UmapMapper(std::shared_ptr<TestFile> file)
        : file_(std::move(file))
    {
    }
    std::string name() const override { return "faultline-umap"; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;

private:
    std::shared_ptr<TestFile> file_;
};

} // namespace bench
