// memory/objects/swap_backed_vm_object.h — anonymous memory under the memory
// budget: cold pages go to swap and come back on their next touch.
//
// Codezero's swap pager, in user space. A private anonymous object of a
// runtime with a memory budget is one of these: its pages are charged to the
// budget as they are installed, and the evictor (runtime/evictor.h) writes
// cold ones to a slot of the swap target and drops them. A later fault on a
// swapped page reads the slot into a bounce page with the handler's
// asynchronous I/O (the fault is Pending meanwhile; other faults are served)
// and installs it with UFFDIO_COPY. Never zeros where data was: a swapped
// page is never filled by fault-around (its PageState stays Present), and a
// failed read is SIGBUS for the threads waiting for it.
//
// Every page carries one atomic word: its swap state, a pin count, and
// whether it is charged to the budget.
//
//   None      resident (or never touched: PageStates says which)
//   Cached    resident, write-protected, and its slot still holds the same
//             bytes: a page swapped in and not written since. Evicting it
//             again costs no write; writing it frees the slot.
//   Evicting  the evictor has write-protected it and is writing it out
//   Dropping  written out; the evictor is dropping it (MADV_DONTNEED)
//   Swapped   not resident; its slot holds it
//   SwapIn    a read of its slot is in flight; faults on it wait for it
//
// The handshake with the evictor (the one eviction_list.h describes for
// file pages): the evictor cannot see a store to a page it is writing out,
// so it write-protects the page first, and a write-protect fault *pins* the
// page across lifting the protection. A pin on an Evicting page cancels the
// eviction; a pin on a Dropping page fails (the fault retries and finds the
// page swapped); the evictor moves Evicting -> Dropping only with no pin and
// no cancel, in one compare-and-swap. Slots are owned by whoever moves a
// page out of a state that has one: the evictor for Evicting and Dropping,
// the read's completion for SwapIn, anyone else for Cached and Swapped.
#pragma once

#include "memory/objects/anonymous_vm_object.h"
#include "memory/objects/eviction_list.h"
#include "memory/page_budget.h"
#include "memory/swap_slots.h"
#include "memory/swap_target.h"

#include <atomic>
#include <memory>
#include <mutex>

namespace faultline::memory {

// What the objects of one runtime share: the budget, the slots, the target.
struct SwapSpace {
    std::shared_ptr<PageBudget> budget;
    std::unique_ptr<SwapSlots> slots;
    std::unique_ptr<SwapTarget> target;
    // Set once the target refused a write or the slots ran out: the evictor
    // stops evicting anonymous pages (the budget is exceeded, with a
    // warning) until a slot is freed or, since the target may have room
    // again (a file system that others freed, a Redis whose keys expired),
    // until retry_at (CLOCK_MONOTONIC ns): then one write is tried, and its
    // success clears the flag.
    std::atomic<bool> full { false };
    std::atomic<uint64_t> retry_at { 0 };
    static constexpr uint64_t kFullRetryNs = 1'000'000'000;
    std::atomic<uint64_t> full_events { 0 };
};

class SwapBackedVMObject final : public AnonymousVMObject {
public:
    enum class SwapState : uint8_t { None = 0, Cached, Evicting, Dropping, Swapped, SwapIn };
    static constexpr size_t kReadSlots = 32;
    static constexpr size_t kMaxWaiters = 16;

    static Result<boost::intrusive_ptr<SwapBackedVMObject>> try_create(size_t size, size_t page_size,
        std::shared_ptr<SwapSpace> space);
    ~SwapBackedVMObject() override;

    const char* kind_name() const noexcept override { return "anonymous"; }
    // Write-protect faults are how writes to pages being evicted, and to
    // clean swapped-in pages, are seen.
    uffd::Mode uffd_modes() const noexcept override { return uffd::Mode::Missing | uffd::Mode::WriteProtect; }
    Outcome handle_fault(const FaultContext&, PageSink&) noexcept override;
    Outcome resume_fault(const FaultContext&, PageSink&, int64_t result) noexcept override;
    // Frees the slots of [first, first+count), uncharges its resident pages
    // and forgets them (unmap, discard). Waits for an eviction or a swap-in
    // in progress (API threads only).
    void release_pages(size_t first, size_t count) noexcept override;
    // The same, but the pages' charges stay on the budget (the count is
    // returned) until the caller has dropped them and calls
    // uncharge_released(): until then they are still resident, and pages
    // filled meanwhile must not take their room.
    size_t release_keeping_charge(size_t first, size_t count) noexcept;
    void uncharge_released(size_t pages) noexcept;

    SwapSpace& space() noexcept { return *space_; }
    EvictionList& eviction() noexcept { return *list_; }
    SwapState swap_state(size_t page) const noexcept { return SwapState(words_[page].load(std::memory_order_acquire) & kStateMask); }
    uint32_t slot_of(size_t page) const noexcept { return slot_table_[page].load(std::memory_order_relaxed); }
    size_t resident_pages() const noexcept { return resident_.load(std::memory_order_relaxed); }
    size_t swapped_pages() const noexcept { return swapped_.load(std::memory_order_relaxed); }

    // Evictor. Takes a None or Cached page with no pin into Evicting; false
    // otherwise. `was` says which (a Cached page needs no write).
    bool begin_evict(size_t page, SwapState& was) noexcept;
    // Gives an Evicting page a slot (false: none left).
    bool assign_slot(size_t page) noexcept;
    // Evicting -> Dropping if no pin or cancel came; otherwise the eviction
    // ends (the page stays, writable as it is, its new slot freed).
    bool commit_evict(size_t page) noexcept;
    // The write failed: the page stays resident, its slot is freed.
    void abort_evict(size_t page) noexcept;
    // Dropping -> Swapped once the page is gone from the mapping.
    void finish_evict(size_t page) noexcept;

    struct Counters {
        std::atomic<uint64_t> swapped_out { 0 };   // pages written to swap (or dropped clean) and dropped
        std::atomic<uint64_t> swapped_in { 0 };    // pages read back
        std::atomic<uint64_t> clean_drops { 0 };   // of swapped_out: Cached pages dropped without a write
        std::atomic<uint64_t> write_errors { 0 };
        std::atomic<uint64_t> read_errors { 0 };
        std::atomic<uint64_t> slots_reclaimed { 0 }; // slots freed because their page was written, freed or discarded
    };
    const Counters& counters() const noexcept { return counters_; }
    Counters& counters() noexcept { return counters_; }

private:
    static constexpr uint32_t kStateMask = 0x7;
    static constexpr uint32_t kCancelled = 0x8;
    static constexpr uint32_t kCharged = 0x10;
    static constexpr uint32_t kPinUnit = 0x100;
    static constexpr uint32_t kPinMask = 0xff00;

    struct ReadSlot {
        io::Operation op; // first: the completion finds its slot from it
        SwapBackedVMObject* object = nullptr;
        size_t page = 0;
        uint32_t swap_slot = 0;
        char* bounce = nullptr;
        int64_t result = 0;
        bool busy = false;
        bool done = false;      // the read completed
        bool settled = false;   // the page was installed, or the read's outcome decided
        bool installing = false;
        bool failed = false;
        size_t waiters = 0;     // tokens posted by the completion
        size_t resumes_left = 0;
        PendingToken tokens[kMaxWaiters];
        CompletionPort* ports[kMaxWaiters] {};
    };

    SwapBackedVMObject(size_t size, size_t page_size, PageStates states, std::shared_ptr<SwapSpace> space,
        std::unique_ptr<EvictionList> list, std::atomic<uint32_t>* words, std::atomic<uint32_t>* slot_table,
        char* bounce, size_t table_bytes) noexcept;

    static SwapState state_of(uint32_t word) noexcept { return SwapState(word & kStateMask); }
    static uint32_t with_state(uint32_t word, SwapState s) noexcept { return (word & ~(kStateMask | kCancelled)) | uint32_t(s); }
    // from -> to in one CAS (pins and the charge bit kept); false if the
    // page was not in `from`.
    bool move(size_t page, SwapState from, SwapState to) noexcept;
    bool pin(size_t page) noexcept;
    void unpin(size_t page) noexcept { words_[page].fetch_sub(kPinUnit, std::memory_order_release); }
    void free_slot(size_t page) noexcept;
    // Marks the page charged (its charge already taken); false if it was.
    bool set_charged(size_t page) noexcept;
    // Clears the mark and uncharges; false if it was not charged.
    bool uncharge_page(size_t page) noexcept;
    // Clears the mark only (the caller uncharges the budget); false if it
    // was not charged.
    bool clear_charge(size_t page) noexcept;

    Outcome fault_missing(const FaultContext&, PageSink&) noexcept;
    Outcome fault_write_protect(const FaultContext&, PageSink&) noexcept;
    Outcome swap_in(const FaultContext&, size_t page) noexcept;
    Outcome fill(const FaultContext&, PageSink&, Window window, bool skip_fault_page) noexcept override;
    // Zero-fills the fault-around window charged to the budget.
    Outcome fill_charged(const FaultContext&, PageSink&, Window window, bool skip_fault_page) noexcept;
    // Charges and lists the pages of [first, end) that became resident.
    void account_filled(size_t first, size_t end, size_t charged) noexcept;
    // Gives back charges a fill did not use — once no release is under way
    // (releasing_): a page the fill placed may be one a release has
    // forgotten and not yet dropped.
    void give_back(size_t pages) noexcept;
    void flush_deferred() noexcept;
    ReadSlot* read_slot_of(size_t page) noexcept; // caller holds reads_lock_
    static void read_done(io::Operation* op, int32_t result) noexcept;
    void release_read_slot(ReadSlot& slot) noexcept; // caller holds reads_lock_

    std::shared_ptr<SwapSpace> space_;
    std::unique_ptr<EvictionList> list_;
    std::atomic<uint32_t>* words_;
    std::atomic<uint32_t>* slot_table_; // slot + 0 when Cached/Evicting/Dropping/Swapped/SwapIn; else stale
    char* bounce_;                      // kReadSlots pages
    size_t table_bytes_;
    std::mutex reads_lock_;
    ReadSlot reads_[kReadSlots];
    std::atomic<size_t> resident_ { 0 };
    std::atomic<size_t> swapped_ { 0 };
    // Releases between release_keeping_charge() and uncharge_released(),
    // and the charges give_back() held back meanwhile.
    std::atomic<size_t> releasing_ { 0 };
    std::atomic<size_t> deferred_uncharge_ { 0 };
    Counters counters_;
};

} // namespace faultline::memory
