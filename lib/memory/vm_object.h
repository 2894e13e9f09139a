// memory/vm_object.h — what a region is a view of.
//
// As in SerenityOS, a Region is a window (address range, access, name) and a
// VMObject is the memory behind it. The object decides how a fault on one of
// its pages is resolved — zero-fill for anonymous memory; file contents, a
// shadow chain or a purged marker for the kinds the roadmap adds — and keeps
// the per-page state, so that several regions (the pieces of a split region,
// and later clones) can view one object.
//
// The fault entry is handle_fault(context, sink) -> Outcome. The context
// says what kind of fault it is (missing, write-protect, minor); the object
// places pages through the sink and answers Installed, Pending (it will post
// a completion for the context's token, and resume_fault() finishes the
// job), Retry, RegionGone, MmGone or Sigbus. Both run on handler threads:
// they must not allocate, throw, block, hold a lock across I/O, or touch
// memory the runtime serves.
#pragma once

#include "memory/fault_context.h"
#include "memory/page_sink.h"
#include "memory/page_states.h"
#include "uffd/modes.h"

#include <boost/smart_ptr/intrusive_ref_counter.hpp>

#include <cstddef>
#include <cstdint>

namespace faultline::memory {

class VMObject : public boost::intrusive_ref_counter<VMObject, boost::thread_safe_counter> {
public:
    virtual ~VMObject();
    VMObject(const VMObject&) = delete;
    VMObject& operator=(const VMObject&) = delete;

    virtual const char* kind_name() const noexcept = 0;
    // The userfaultfd modes a region viewing this object is registered with.
    virtual uffd::Mode uffd_modes() const noexcept { return uffd::Mode::Missing; }
    // A memfd the region maps (at the region's object offset) instead of
    // arena memory, or -1; and how: MAP_SHARED or MAP_PRIVATE.
    virtual int backing_fd() const noexcept { return -1; }
    virtual int backing_map_type() const noexcept;
    // Maps whatever else a view of [offset, offset + size) shows over the
    // backing memfd already mapped at `base` (a copy-on-write chain's
    // layers): 0 or -errno.
    virtual int map_layers(uintptr_t /*base*/, size_t /*size*/, int /*prot*/, size_t /*offset*/) const noexcept { return 0; }
    // Registered with the runtime's asynchronous write-protect userfaultfd
    // (shared file regions tracking writes with WP_ASYNC) instead of the
    // main one.
    virtual bool async_write_tracking() const noexcept { return false; }

    size_t size() const noexcept { return size_; }
    size_t page_size() const noexcept { return page_size_; }
    size_t page_count() const noexcept { return size_ / page_size_; }

    // Resolves one fault. The default resolves the kinds an object need not
    // know about: a write-protect fault lifts the protection (the region's
    // access already allowed the write, or the kernel would have raised
    // SIGSEGV), so an unexpected protection can never make a thread fault
    // forever; a minor fault maps the page the page cache holds.
    virtual Outcome handle_fault(const FaultContext&, PageSink&) noexcept;
    // Finishes a fault this object answered Pending, once its completion
    // was posted with `result`. The default has nothing to finish: SIGBUS.
    virtual Outcome resume_fault(const FaultContext&, PageSink&, int64_t result) noexcept;
    // Runs after the fault service woke the thread of a fault handle_fault()
    // answered with around_later: installs the rest of its window (an
    // isolated fault, WakeOrder), or the window a stream will want next.
    // The Outcome's pages and wake range are used (the claimed window is
    // woken once it is settled).
    virtual Outcome fault_around(const FaultContext&, PageSink&) noexcept { return Outcome::installed(FillKind::Zero, 0); }
    // Called by the fault service once it has raised SIGBUS for a fault this
    // object answered with Outcome::sigbus_with_hook() (and only then).
    virtual void sigbus_raised(const FaultContext&) noexcept { }

    // The page states walks over the object use (statistics, counters on a
    // split): the object's own, or those of what it views (a file cache).
    virtual const PageStates& states() const noexcept { return states_; }
    PageState page_state(size_t index) const noexcept { return states().get(index); }
    // Marks pages Unpopulated after the runtime dropped them.
    void forget_pages(size_t first, size_t count) noexcept { states_.forget(first, count); }
    // Frees whatever holds the pages' contents outside any mapping (a
    // memfd's page cache, later a swap slot) and forgets their state.
    // Called once no region maps them any more, or to discard them.
    virtual void release_pages(size_t first, size_t count) noexcept { forget_pages(first, count); }

protected:
    VMObject(size_t size, size_t page_size, PageStates states) noexcept;

    PageStates states_;

private:
    size_t size_;
    size_t page_size_;
};

} // namespace faultline::memory
