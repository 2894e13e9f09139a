// bench/purge_mappers.cc — purgeable and native regions, prepared.
#include "purge_mappers.h"

#include "mappers.h"

#include <cerrno>
#include <cstring>
#include <sys/mman.h>

namespace bench {

char* PurgeableMapper::map(size_t bytes, bool)
{
    runtime_ = make_runtime(config_);
    auto p = runtime_->allocate_purgeable(bytes, { .name = "bench-purgeable" });
    if (!p)
        fail("allocate_purgeable(" + std::to_string(bytes) + ") failed: " + p.error().message());
    char* base = static_cast<char*>(*p);
    prepare_(*runtime_, base, bytes);
    return base;
}

void PurgeableMapper::unmap(char* base, size_t bytes)
{
    auto ok = runtime_->unmap(base, bytes);
    runtime_.reset();
    if (!ok)
        fail(std::string("faultline unmap failed: ") + ok.error().message());
}

char* PreparedNativeMapper::map(size_t bytes, bool)
{
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail("mmap(" + std::to_string(bytes) + ") failed: " + strerror(errno));
    prepare_(static_cast<char*>(p), bytes);
    return static_cast<char*>(p);
}

void PreparedNativeMapper::unmap(char* base, size_t bytes)
{
    if (munmap(base, bytes) != 0)
        fail(std::string("munmap failed: ") + strerror(errno));
}

} // namespace bench
