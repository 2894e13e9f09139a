// memory/swap_slots.h — which pages of the swap target are in use.
//
// The swap pager (memory/objects/swap_backed_vm_object.h) writes an evicted
// anonymous page to one slot of its swap target and reads it back from
// there. Slots are handed out from a bitmap in a MAP_NORESERVE mapping (a
// terabyte of swap costs its bitmap's pages only as they are used), with a
// rotating cursor so that consecutive evictions get consecutive slots —
// neighbouring pages then sit side by side in the swap file, which keeps a
// later sequential swap-in sequential on disk. Freeing is one atomic
// fetch_and: handler threads free the slot of a page that is rewritten, so
// that path takes no lock. Allocation (the evictor only) takes a short lock
// to move the cursor.
//
// Allocation-free after creation and kernel-free
// (tests/unit/memory/swap_slots_test.cc).
#pragma once

#include <faultline/result.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace faultline::memory {

class SwapSlots {
public:
    static constexpr uint32_t kNone = UINT32_MAX;
    // At most 2^32 - 2 slots (16 TiB of 4 KiB pages).
    static Result<std::unique_ptr<SwapSlots>> create(size_t slots) noexcept;
    ~SwapSlots();
    SwapSlots(const SwapSlots&) = delete;
    SwapSlots& operator=(const SwapSlots&) = delete;

    size_t capacity() const noexcept { return slots_; }
    size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
    // A free slot, or kNone when every slot is taken.
    uint32_t allocate() noexcept;
    // Gives a slot back (any thread; a slot not allocated is ignored).
    void free(uint32_t slot) noexcept;
    bool allocated(uint32_t slot) const noexcept
    {
        return slot < slots_ && (words_[slot / 64].load(std::memory_order_relaxed) >> (slot % 64)) & 1;
    }

private:
    SwapSlots(std::atomic<uint64_t>* words, size_t slots, size_t bytes) noexcept
        : words_(words)
        , slots_(slots)
        , map_bytes_(bytes)
    {
    }
    std::atomic<uint64_t>* words_;
    size_t slots_;
    size_t map_bytes_;
    std::atomic<size_t> used_ { 0 };
    std::mutex lock_; // the cursor, and the claim of a bit (against other allocators)
    size_t cursor_ = 0; // the word the next search starts at
};

} // namespace faultline::memory
