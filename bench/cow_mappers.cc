// bench/cow_mappers.cc — clonable regions, prepared.
#include "cow_mappers.h"

#include "mappers.h"

namespace bench {

char* ClonableMapper::map(size_t bytes, bool)
{
    runtime_ = make_runtime(config_);
    auto p = runtime_->map_anonymous({ .size = bytes, .flags = faultline::RegionFlags::Clonable, .name = "bench-clonable" });
    if (!p)
        fail("map_anonymous(Clonable, " + std::to_string(bytes) + ") failed: " + p.error().message());
    char* base = static_cast<char*>(*p);
    prepare_(*runtime_, base, bytes);
    return base;
}

void ClonableMapper::unmap(char* base, size_t bytes)
{
    auto ok = runtime_->unmap(base, bytes);
    // Clones and snapshots the case left go with the runtime.
    runtime_.reset();
    if (!ok)
        fail(std::string("faultline unmap failed: ") + ok.error().message());
}

} // namespace bench
