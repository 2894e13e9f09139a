// memory/objects/inode_vm_object.h — what shared and private file objects
// have in common: a view of one FileCache, and how a missing or minor fault
// on a file page is resolved.
//
// A fault on a file page, top to bottom:
//   1. past the end of the file (as of now: a file truncated while mapped is
//      seen on the next fault) -> SIGBUS, as mmap(2) does;
//   2. the page is in the cache, whole -> map it (zero-copy: UFFDIO_CONTINUE
//      of the run of cached pages from it; copy mode: the kernel maps it when
//      the thread retries);
//   3. otherwise FileCache::fetch joins the read in flight or starts one for
//      the readahead window around the page -> Pending; the read's
//      completion resumes the fault (resume_fault), which maps the page, or
//      delivers SIGBUS to this thread only if the read failed.
// The object's size is the largest file the cache handles; a region views it
// at the file offset it maps.
#pragma once

#include "memory/objects/file_cache.h"
#include "memory/vm_object.h"

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include <atomic>

namespace faultline::memory {

class InodeVMObject : public VMObject {
public:
    FileCache& cache() const noexcept { return *cache_; }
    const boost::intrusive_ptr<FileCache>& cache_ptr() const noexcept { return cache_; }

    int backing_fd() const noexcept override { return cache_->memfd(); }
    const PageStates& states() const noexcept override { return cache_->states(); }
    Outcome handle_fault(const FaultContext&, PageSink&) noexcept override;
    Outcome resume_fault(const FaultContext&, PageSink&, int64_t result) noexcept override;
    // After a stream's thread was woken: read the window it will fault into
    // next (asynchronous readahead, as the kernel's page cache does).
    Outcome fault_around(const FaultContext&, PageSink&) noexcept override;
    // The cache outlives any region: unmapping a file region drops nothing.
    void release_pages(size_t, size_t) noexcept override {}

protected:
    InodeVMObject(boost::intrusive_ptr<FileCache> cache, PageStates placeholder) noexcept;
    // Whether installed pages are write-protected (shared objects that
    // track writes).
    virtual bool protect_installed() const noexcept { return false; }
    // Whether any view of the object could write a page (a page mapped
    // without write protection then counts dirty at once).
    virtual bool writable_views() const noexcept { return true; }
    // Maps the run of cached pages from the faulting page on (at most the
    // readahead window), write-protected when the object tracks writes.
    Outcome map_cached(const FaultContext&, PageSink&) noexcept;

    boost::intrusive_ptr<FileCache> cache_;
    // UFFDIO_CONTINUE_MODE_WP needs Linux 6.4; without it a page is mapped
    // writable and counted dirty at once (sync then writes it).
    std::atomic<bool> continue_wp_ { true };
};

} // namespace faultline::memory
