// memory/objects/shared_inode_vm_object.h — MAP_SHARED semantics for a file.
//
// One per (device, inode) in a runtime: every shared region of the file, at
// any offset, views it, and they map one memfd, so each sees the others'
// writes at once. Writes are tracked with write-protect faults where the
// kernel has them on memfd ranges (5.19): pages are mapped protected, the
// first write marks the page dirty and lifts the protection; sync() writes
// the dirty pages back (runtime/file_regions.h). Without them, every cached
// page counts as dirty.
#pragma once

#include "memory/objects/inode_vm_object.h"

#include <faultline/result.h>

namespace faultline::memory {

class SharedInodeVMObject final : public InodeVMObject {
public:
    static Result<boost::intrusive_ptr<SharedInodeVMObject>> try_create(boost::intrusive_ptr<FileCache> cache);

    const char* kind_name() const noexcept override { return cache().store() ? "store" : "file-shared"; }
    uffd::Mode uffd_modes() const noexcept override;
    Outcome handle_fault(const FaultContext&, PageSink&) noexcept override;

    // Whether dirty bits are exact (write-protect faults) or every cached
    // page must be treated as dirty.
    bool tracks_writes() const noexcept
    {
        return cache_->options().zero_copy && cache_->options().tracking != FileCache::WriteTracking::None;
    }
    bool async_write_tracking() const noexcept override
    {
        return cache_->options().zero_copy && cache_->options().tracking == FileCache::WriteTracking::Async;
    }
    // Some region of it has been writable: without tracking, only then can
    // a cached page differ from the file (and be written back). The first
    // time, where pages were mapped without write protection (no
    // UFFDIO_CONTINUE_MODE_WP), every cached page counts dirty from now on:
    // a region made writable writes them without a fault.
    void note_writable() noexcept;
    bool ever_writable() const noexcept { return ever_writable_.load(std::memory_order_seq_cst); }

private:
    using InodeVMObject::InodeVMObject;
    bool protect_installed() const noexcept override { return tracks_writes(); }
    bool writable_views() const noexcept override { return ever_writable(); }
    std::atomic<bool> ever_writable_ { false };
};

} // namespace faultline::memory
