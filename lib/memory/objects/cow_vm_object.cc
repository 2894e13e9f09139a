#include "memory/objects/cow_vm_object.h"

#include "os/virtual_memory.h"
#include "support/try.h"

#include <algorithm>

#include <new>
#include <sys/mman.h>
#include <unistd.h>

namespace faultline::memory {

Result<boost::intrusive_ptr<CowVMObject>> CowVMObject::try_create(size_t size, size_t page_size, const char* name)
{
    if (size == 0 || size % page_size != 0)
        return fail(EINVAL, "object size must be a non-zero multiple of the page size");
    auto states = TRY(PageStates::create(size / page_size));
    int fd = TRY(create_memfd(size, name && *name ? name : "faultline-clonable"));
    auto* object = new (std::nothrow) CowVMObject(size, page_size, std::move(states), fd);
    if (!object) {
        close(fd);
        return fail(ENOMEM, "out of memory for VMObject");
    }
    return boost::intrusive_ptr<CowVMObject>(object);
}

Result<boost::intrusive_ptr<CowVMObject>> CowVMObject::try_create_chain(size_t size, size_t page_size, int base_fd,
    std::vector<std::shared_ptr<const CowLayer>> layers)
{
    auto states = PageStates::create(size / page_size);
    if (!states) {
        close(base_fd);
        return std::unexpected(states.error());
    }
    auto* object = new (std::nothrow) CowVMObject(size, page_size, std::move(*states), base_fd);
    if (!object) {
        close(base_fd);
        return fail(ENOMEM, "out of memory for VMObject");
    }
    object->layers_ = std::move(layers);
    object->freeze();
    return boost::intrusive_ptr<CowVMObject>(object);
}

int CowVMObject::map_layers(uintptr_t base, size_t size, int prot, size_t offset) const noexcept
{
    const size_t page = page_size();
    const size_t first = offset / page, end = (offset + size) / page;
    for (const auto& layer : layers_)
        for (const PageRun& run : layer->runs()) {
            const size_t lo = std::max(run.first, first), hi = std::min(run.end, end);
            if (lo >= hi)
                continue;
            if (int rc = os::map_fd_fixed(base + (lo - first) * page, (hi - lo) * page, prot, MAP_PRIVATE, layer->fd(), lo * page); rc < 0)
                return rc;
        }
    return 0;
}

int CowVMObject::backing_map_type() const noexcept { return frozen() ? MAP_PRIVATE : MAP_SHARED; }

Outcome CowVMObject::handle_fault(const FaultContext& ctx, PageSink& sink) noexcept
{
    if (frozen()) {
        Outcome retry;
        retry.resolution = Resolution::Retry;
        return retry;
    }
    return AnonymousVMObject::handle_fault(ctx, sink);
}

void CowVMObject::release_pages(size_t first, size_t count) noexcept
{
    if (frozen()) {
        forget_pages(first, count);
        return;
    }
    AnonymousVMObject::release_pages(first, count);
}

} // namespace faultline::memory
