#include "memory/objects/volatile_pages.h"

#include <sys/mman.h>

namespace faultline::memory {

Result<VolatilePages> VolatilePages::create(size_t pages) noexcept
{
    static_assert(sizeof(std::atomic<uint8_t>) == 1);
    if (pages == 0)
        return fail(EINVAL, "volatility table of zero pages");
    // NonVolatile is 0: the kernel's zero pages are the initial state.
    void* p = mmap(nullptr, pages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return fail(ENOMEM, "cannot reserve the volatility table");
    return VolatilePages(static_cast<std::atomic<uint8_t>*>(p), pages);
}

VolatilePages::VolatilePages(VolatilePages&& o) noexcept
    : bytes_(o.bytes_)
    , pages_(o.pages_)
{
    o.bytes_ = nullptr;
    o.pages_ = 0;
}

VolatilePages::~VolatilePages()
{
    if (bytes_)
        munmap(bytes_, pages_);
}

} // namespace faultline::memory
