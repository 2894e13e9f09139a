// bench/mappers.cc — faultline and native regions.
#include "mappers.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>

namespace bench {

std::unique_ptr<faultline::Runtime> make_runtime(const faultline::Config& config)
{
    auto rt = faultline::Runtime::create(config);
    if (!rt) {
        fprintf(stderr, "faultline-bench: cannot create a faultline runtime: %s\n", rt.error().message());
        exit(1);
    }
    return std::move(*rt);
}

char* FaultlineMapper::map(size_t bytes, bool sparse)
{
    if (fresh_) {
        owned_ = make_runtime(config_);
        runtime_ = owned_.get();
    }
    faultline::MapOptions options;
    options.size = bytes;
    options.name = "bench";
    // A sparse case touches one page in many; charging its whole span
    // against the commit limit would make it fail on a small machine for no
    // reason. The flag changes accounting only, not the fault path.
    if (sparse)
        options.flags = faultline::RegionFlags::NoReserve;
    auto p = runtime_->map_anonymous(options);
    if (!p)
        fail("faultline map_anonymous(" + std::to_string(bytes) + ") failed: " + p.error().message());
    return static_cast<char*>(*p);
}

void FaultlineMapper::unmap(char* base, size_t bytes)
{
    auto ok = runtime_->unmap(base, bytes);
    if (fresh_) {
        runtime_ = nullptr;
        owned_.reset();
    }
    if (!ok)
        fail(std::string("faultline unmap failed: ") + ok.error().message());
}

char* NativeMapper::map(size_t bytes, bool sparse)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (sparse ? MAP_NORESERVE : 0);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED)
        fail("mmap(" + std::to_string(bytes) + ") failed: " + strerror(errno));
    return static_cast<char*>(p);
}

void NativeMapper::unmap(char* base, size_t bytes)
{
    if (munmap(base, bytes) != 0)
        fail(std::string("munmap failed: ") + strerror(errno));
}

} // namespace bench
