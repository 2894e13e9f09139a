// fault/pending_faults.h — the faults being served, keyed by page.
//
// Every fault the service resolves holds a slot here from the moment its
// message is read until its page is installed (or it is answered otherwise).
// That gives two things:
//   - De-duplication across batches and handler threads: several threads
//     faulting one page send one message each; a message whose page already
//     has a slot is dropped, because the wake that ends that slot's fault
//     releases every thread waiting on the page. The slot is always
//     released *before* that wake, so a message read after the wake finds no
//     slot and is served on its own (EEXIST, wake): nobody is left waiting.
//   - Faults that outlive their batch: an object that answers Pending (its
//     page is produced later by a worker or an io_uring read) leaves the
//     slot parked, with its region pinned (in flight), until a completion
//     names the slot's token. The handler threads serve other faults
//     meanwhile.
// Fixed capacity, allocated when the runtime starts; every operation is
// O(1) under a mutex held for a few loads and stores (never across I/O).
// Slots are stable (tokens name them); a separate open-addressing index
// maps pages to slots, with backward-shift deletion so it never fills with
// tombstones.
#pragma once

#include "memory/fault_context.h"
#include "memory/region.h"
#include "uffd/modes.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

namespace faultline::fault {

class PendingFaultTable {
public:
    enum class ClaimStatus : uint8_t {
        Claimed,   // the caller serves this fault; the token names its slot
        Duplicate, // the page already has a slot: drop the message
        Full,      // no free slot: serve it without one (no cross-batch dedupe, no Pending)
    };
    struct Claim {
        ClaimStatus status;
        memory::PendingToken token;
    };
    // What a parked fault needs to be resumed.
    struct Parked {
        memory::Region* region = nullptr; // pinned (in flight) while parked
        uintptr_t page = 0;
        uffd::FaultKind kind = uffd::FaultKind::Missing;
        bool write = false;
        int tid = 0;
    };

    explicit PendingFaultTable(size_t capacity);
    PendingFaultTable(const PendingFaultTable&) = delete;
    PendingFaultTable& operator=(const PendingFaultTable&) = delete;

    size_t capacity() const noexcept { return capacity_; }

    Claim claim(uintptr_t page) noexcept;
    // Ends a claimed (or resumed) fault; the page may be claimed again.
    void release(memory::PendingToken token) noexcept;
    // The object answered Pending: keep the slot until a completion. If the
    // completion already arrived (the work finished on another thread
    // before the answer reached the table), returns its result instead and
    // the slot is being resumed: the caller resumes the fault at once.
    std::optional<int64_t> park(memory::PendingToken token, const Parked& parked) noexcept;
    // A completion arrived: hands out the parked fault once. A completion
    // for a fault not parked yet (or being resumed) is kept for park() /
    // repark() to return; a stale one is ignored. False unless handed out.
    bool take(memory::PendingToken token, Parked* out, int64_t result = 0) noexcept;
    // The object answered Pending again on resume: park once more, or
    // return a completion that arrived meanwhile.
    std::optional<int64_t> repark(memory::PendingToken token) noexcept;

    size_t in_use() const noexcept;
    size_t parked() const noexcept { return parked_.load(std::memory_order_acquire); }
    // Blocks until no fault is parked (runtime shutdown drains them).
    void wait_until_none_parked() const noexcept;

private:
    enum class State : uint8_t { Free, Claimed, Parked, Resuming };
    struct Slot {
        uintptr_t page = 0;
        uint32_t generation = 0;
        State state = State::Free;
        bool early = false;         // a completion arrived before park()/repark()
        int64_t early_result = 0;
        Parked parked;
    };
    static constexpr uint32_t kEmpty = UINT32_MAX;

    size_t home(uintptr_t page) const noexcept;
    // Index position of `page`, or the empty position where it would go.
    size_t find(uintptr_t page) const noexcept;
    void erase_from_index(size_t position) noexcept;
    Slot* slot_for(memory::PendingToken token, State expected) noexcept;

    size_t capacity_;
    size_t index_mask_;
    size_t page_shift_;
    mutable std::mutex lock_;
    std::unique_ptr<Slot[]> slots_;
    std::unique_ptr<uint32_t[]> index_;     // page -> slot, kEmpty when free
    std::unique_ptr<uint32_t[]> free_list_; // stack of free slot numbers
    size_t free_count_ = 0;
    std::atomic<size_t> parked_ { 0 };
};

} // namespace faultline::fault
