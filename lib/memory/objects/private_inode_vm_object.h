// memory/objects/private_inode_vm_object.h — MAP_PRIVATE semantics for a
// file: a private copy-on-write view.
//
// The region maps the file's memfd MAP_PRIVATE: clean pages are the cache's
// (shared with every other region of the file, re-read when dropped), and
// the first write to one makes the kernel copy it into the region alone, as
// it does for any private mapping — no fault reaches the runtime for it, and
// written pages never reach the file.
#pragma once

#include "memory/objects/inode_vm_object.h"

#include <faultline/result.h>

namespace faultline::memory {

class PrivateInodeVMObject final : public InodeVMObject {
public:
    static Result<boost::intrusive_ptr<PrivateInodeVMObject>> try_create(boost::intrusive_ptr<FileCache> cache);

    const char* kind_name() const noexcept override { return "file-private"; }
    int backing_map_type() const noexcept override;
    uffd::Mode uffd_modes() const noexcept override
    {
        return cache_->options().zero_copy ? uffd::Mode::Missing | uffd::Mode::Minor : uffd::Mode::Missing;
    }

private:
    using InodeVMObject::InodeVMObject;
};

} // namespace faultline::memory
