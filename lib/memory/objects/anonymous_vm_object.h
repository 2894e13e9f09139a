// memory/objects/anonymous_vm_object.h — zero-filled memory.
//
// A read fault maps the shared zero page (UFFDIO_ZEROPAGE); a write fault
// installs zeroed private pages. Either way the object installs a whole
// fault-around window of still-unpopulated pages per event
// (memory/objects/fault_around.h), because one userfaultfd round trip costs
// about ten native faults (docs/performance.md).
//
// A shared object (RegionFlags::Shared) keeps its pages in a memfd that the
// region maps MAP_SHARED, so a fork child's copy of the region sees the same
// pages instead of copies: private anonymous memory can never be shared
// between two mappings, one page cache can. The memfd mapping gets its own
// userfaultfd registration inside the arena.
#pragma once

#include "memory/objects/fault_around.h"
#include "memory/vm_object.h"

#include <faultline/result.h>

#include <boost/smart_ptr/intrusive_ptr.hpp>

namespace faultline::memory {

class AnonymousVMObject : public VMObject {
public:
    static Result<boost::intrusive_ptr<AnonymousVMObject>> try_create_with_size(size_t size, size_t page_size);
    // `name` names the memfd (/proc/self/maps shows /memfd:NAME).
    static Result<boost::intrusive_ptr<AnonymousVMObject>> try_create_shared_with_size(size_t size, size_t page_size, const char* name);
    ~AnonymousVMObject() override;

    const char* kind_name() const noexcept override { return is_shared() ? "shared-anonymous" : "anonymous"; }
    Outcome handle_fault(const FaultContext&, PageSink&) noexcept override;
    Outcome fault_around(const FaultContext&, PageSink&) noexcept override;

    bool is_shared() const noexcept { return memfd_ >= 0; }
    // The memfd behind a shared object (-1 for a private one).
    int backing_fd() const noexcept override { return memfd_; }
    // Frees the memory of [first, first+count) pages: a shared object punches
    // a hole in its memfd (a private object's pages die with their mapping).
    // Also forgets their state.
    void release_pages(size_t first, size_t count) noexcept override;

protected:
    // A memfd of `size` bytes named `name` (the caller owns it).
    static Result<int> create_memfd(size_t size, const char* name);
    AnonymousVMObject(size_t size, size_t page_size, PageStates states, int memfd) noexcept
        : VMObject(size, page_size, std::move(states))
        , memfd_(memfd)
    {
    }
    // Claims and installs the unpopulated pages of `window` (the faulting
    // page always, whatever its state says, unless `skip_fault_page`), one
    // fill per run; the Outcome's wake range is the window.
    Outcome fill_window(const FaultContext&, PageSink&, Window window, bool skip_fault_page) noexcept;
    // Every fill of handle_fault() and fault_around() goes through here: a
    // subclass that charges installed pages to a budget (the swap pager)
    // wraps fill_window().
    virtual Outcome fill(const FaultContext& ctx, PageSink& sink, Window window, bool skip_fault_page) noexcept
    {
        return fill_window(ctx, sink, window, skip_fault_page);
    }
    // A subclass that must keep some pages out of fault-around windows (a
    // purgeable object: pages being purged, purged pages that must fault on
    // their own) sets `filtered_` and answers here; the plain object pays
    // one predictable branch per page.
    virtual bool may_fill_around(size_t) const noexcept { return true; }
    bool filtered_ = false;
    // Read faults install private zeroed pages too, never the shared zero
    // page: a later write would turn the zero page into a private page
    // without any fault, and a budget must see every page that becomes
    // resident.
    bool always_private_ = false;

private:
    int memfd_ = -1;
};

} // namespace faultline::memory
