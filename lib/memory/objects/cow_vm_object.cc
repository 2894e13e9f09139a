#include "memory/objects/cow_vm_object.h"

#include "support/try.h"

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
