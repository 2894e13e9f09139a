// memory/vm_object.h — what a region is a view of.
//
// As in SerenityOS, a Region is a window (address range, access, name) and a
// VMObject is the memory behind it. The object decides how a missing page is
// resolved (zero-fill for anonymous memory; file contents, a shadow chain or
// a purged marker for the kinds the roadmap adds) and keeps the per-page
// state, so that several regions (the pieces of a split region, and later
// clones) can view one object.
#pragma once

#include <boost/smart_ptr/intrusive_ref_counter.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace faultline::fault {
class PageInstaller;
}

namespace faultline::memory {

// What the runtime knows of one page of an object. Kept by the object, not
// the region. A page the runtime installed may since have changed in the
// kernel (a zero-mapped page written is now a private page); statistics read
// the page tables for that, the fault path only needs these hints.
enum class PageState : uint8_t {
    Unpopulated = 0, // never installed, or dropped since
    ZeroMapped = 1,  // mapped to the shared zero page by a read fault
    Present = 2,     // a private page was installed
};

// Everything the object needs to resolve one fault, computed by the Region.
struct FaultContext {
    uintptr_t page = 0;          // page-aligned faulting address
    bool write = false;          // the access was a write
    uintptr_t region_base = 0;   // fault-around never leaves [region_base, region_end)
    uintptr_t region_end = 0;
    size_t object_offset = 0;    // byte offset in the object that region_base maps
    unsigned fault_around_pages = 1;
};

enum class FaultOutcome : uint8_t {
    Installed,   // the page is there; wake the thread
    Retry,       // nothing installed, the thread should refault (transient condition)
    RegionGone,  // the mapping disappeared under us; wake, the thread will see it
    MmGone,      // the process is exiting
    Sigbus,      // the page cannot be provided: deliver SIGBUS
};

class VMObject : public boost::intrusive_ref_counter<VMObject, boost::thread_safe_counter> {
public:
    virtual ~VMObject();
    VMObject(const VMObject&) = delete;
    VMObject& operator=(const VMObject&) = delete;

    virtual const char* kind_name() const noexcept = 0;

    size_t size() const noexcept { return size_; }
    size_t page_count() const noexcept { return size_ / page_size_; }

    // Resolves a missing-page fault: installs the page a thread waits for.
    // Runs on a handler thread: it must not
    // allocate, throw, block on I/O under a lock, or touch served memory. An
    // object whose resolution needs I/O (file objects, roadmap) will submit
    // it and return later through the same installer; anonymous memory never
    // waits.
    virtual FaultOutcome handle_missing_page(const FaultContext&, fault::PageInstaller&, uint64_t* pages_installed) noexcept = 0;
    // Installs neighbours of a page that handle_missing_page() just resolved
    // (the fault-around window). Called after the faulting thread has been
    // woken, so the window's cost is not added to that thread's wait.
    virtual void fault_around(const FaultContext&, fault::PageInstaller&, uint64_t* pages_installed) noexcept
    {
        *pages_installed = 0;
    }

    PageState page_state(size_t index) const noexcept
    {
        return PageState(states_[index].load(std::memory_order_relaxed));
    }
    // Marks pages Unpopulated after the runtime dropped them.
    void forget_pages(size_t first, size_t count) noexcept;
    // Frees whatever holds the pages' contents outside any mapping (a
    // memfd's page cache, later a swap slot) and forgets their state.
    // Called once no region maps them any more, or to discard them.
    virtual void release_pages(size_t first, size_t count) noexcept { forget_pages(first, count); }

protected:
    // `states` is the per-page array, from allocate_page_states().
    VMObject(size_t size, size_t page_size, std::atomic<uint8_t>* states);

    // One byte per page in a MAP_NORESERVE mapping: the kernel provides zero
    // pages lazily, so a huge noreserve region costs nothing until touched,
    // and the fault path never allocates to record state.
    static std::atomic<uint8_t>* allocate_page_states(size_t pages);
    static void release_page_states(std::atomic<uint8_t>* states, size_t pages);

    // Moves pages in [first, first+count) from Unpopulated to `to`.
    void mark_populated(size_t first, size_t count, PageState to) noexcept;

    size_t size_;
    size_t page_size_;
    std::atomic<uint8_t>* states_;
};

} // namespace faultline::memory
