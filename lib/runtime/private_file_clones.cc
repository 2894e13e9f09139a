#include "runtime/private_file_clones.h"

#include "support/log.h"
#include "support/try.h"

namespace faultline {

using memory::PrivateInodeVMObject;
using memory::Region;

Result<void*> PrivateFileClones::clone(Region& source, const std::string& name, bool read_only)
{
    auto& from = static_cast<PrivateInodeVMObject&>(source.object());
    auto object = TRY(PrivateInodeVMObject::try_create(from.cache_ptr()));
    MapOptions o;
    o.size = source.size();
    o.access = read_only ? Access::Read : source.access();
    o.max_access = read_only ? Access::Read : source.max_access();
    o.name = name.empty() ? source.name() : name;
    void* at = TRY(mapper_.map(o, std::move(object), false, source.object_offset(), source.readahead()));
    if (auto copied = copies_.copy_written(source, uintptr_t(at)); !copied) {
        if (auto undone = mapper_.unmap(uintptr_t(at), source.size()); !undone)
            log::error("clone: unmapping a half-made clone of a file region failed: {}", undone.error().message());
        return std::unexpected(copied.error());
    }
    return at;
}

Result<void> PrivateFileClones::rollback(Region& region, const Region& snapshot)
{
    // In this order, so that no page shows the file's bytes in between
    // where both the region and the snapshot hold their own: first the
    // region's written pages the snapshot did not write are dropped (they
    // read the file again, as the snapshot does there), then the snapshot's
    // written pages are put in, over what the region holds.
    TRY(copies_.drop_written(region, &snapshot));
    return copies_.copy_written(snapshot, region.base());
}

} // namespace faultline
