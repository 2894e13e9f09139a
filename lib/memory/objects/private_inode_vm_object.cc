#include "memory/objects/private_inode_vm_object.h"

#include <new>
#include <sys/mman.h>

namespace faultline::memory {

Result<boost::intrusive_ptr<PrivateInodeVMObject>> PrivateInodeVMObject::try_create(boost::intrusive_ptr<FileCache> cache)
{
    auto placeholder = PageStates::create(1);
    if (!placeholder)
        return std::unexpected(placeholder.error());
    auto* object = new (std::nothrow) PrivateInodeVMObject(std::move(cache), std::move(*placeholder));
    if (!object)
        return fail(ENOMEM, "out of memory for a file object");
    return boost::intrusive_ptr<PrivateInodeVMObject>(object);
}

int PrivateInodeVMObject::backing_map_type() const noexcept { return MAP_PRIVATE; }

} // namespace faultline::memory
