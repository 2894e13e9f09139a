// memory/objects/eviction_list.h — a cache's resident pages in eviction
// order, and the per-page handshake between the evictor and the fault path.
//
// The list: a doubly linked list threaded through two arrays indexed by page
// (MAP_NORESERVE, like the page states: a page costs its entries only once
// it has been resident), oldest first. A page joins at the back when its
// read completes; the evictor takes from the front. Second chance (CLOCK):
// a page whose referenced bit is set goes to the back instead, its bit
// cleared — the fault path sets the bit whenever it maps the page. FIFO
// ignores the bit. O(1) per operation, nothing allocated, one short lock.
//
// The handshake: dropping a page must never lose a write to it, yet the
// evictor cannot stop a thread's store to a mapped page — only the fault
// path sees writes (write-protect faults) and mappings (minor faults). So
// the fault path *pins* a page across resolving a fault on it (from before
// it lifts a protection or maps the page to after it marks it dirty), and
// the evictor goes Evicting -> (write back) -> Dropping -> drop:
//   - a pin on an Evicting page cancels the eviction (the page is in use);
//   - a pin on a Dropping page fails: the fault retries, and finds the page
//     gone and reads it again (the write-back put its data in the file);
//   - the evictor enters Dropping only from Evicting with no pin and no
//     cancel, atomically, so no pin is held across a drop.
// Everything here is allocation-free and kernel-free
// (tests/unit/memory/eviction_list_test.cc).
#pragma once

#include <faultline/result.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace faultline::memory {

class EvictionList {
public:
    // Pages [0, pages) may be listed; at most 2^32-1 of them.
    static Result<std::unique_ptr<EvictionList>> create(size_t pages) noexcept;
    ~EvictionList();
    EvictionList(const EvictionList&) = delete;
    EvictionList& operator=(const EvictionList&) = delete;

    // List (any thread).
    void push_back(size_t page) noexcept;
    void remove(size_t page) noexcept;
    bool listed(size_t page) const noexcept { return flags_[page].load(std::memory_order_relaxed) & kListed; }
    size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
    // The oldest page, moved to the back in the same step (the evictor
    // then decides; a page it keeps is where it belongs). False if empty.
    bool rotate_front(size_t& page) noexcept;

    void set_referenced(size_t page) noexcept
    {
        if (!(flags_[page].load(std::memory_order_relaxed) & kReferenced))
            flags_[page].fetch_or(kReferenced, std::memory_order_relaxed);
    }
    // True if the bit was set.
    bool clear_referenced(size_t page) noexcept
    {
        return flags_[page].fetch_and(uint8_t(~kReferenced), std::memory_order_relaxed) & kReferenced;
    }

    // The evictor unmapped the page from the regions' views to learn
    // whether it is used: the next fault on it is a touch it learns from.
    void set_zapped(size_t page) noexcept { flags_[page].fetch_or(kZapped, std::memory_order_relaxed); }
    bool take_zapped(size_t page) noexcept
    {
        return (flags_[page].load(std::memory_order_relaxed) & kZapped)
            && (flags_[page].fetch_and(uint8_t(~kZapped), std::memory_order_relaxed) & kZapped);
    }

    // Fault path.
    // False if the page is being dropped (answer the fault Retry).
    bool pin(size_t page) noexcept;
    void unpin(size_t page) noexcept;

    // Evictor.
    // False if the page is pinned or already being evicted.
    bool begin_evict(size_t page) noexcept;
    // Evicting -> Dropping; false (and the eviction ends) if a pin came or
    // cancelled it meanwhile.
    bool commit_evict(size_t page) noexcept;
    // Ends an eviction, dropped or abandoned.
    void end_evict(size_t page) noexcept;

private:
    static constexpr uint8_t kListed = 1;
    static constexpr uint8_t kReferenced = 2;
    static constexpr uint8_t kZapped = 4;
    static constexpr uint8_t kPinMask = 0x1f;
    static constexpr uint8_t kEvicting = 0x20;
    static constexpr uint8_t kDropping = 0x40;
    static constexpr uint8_t kCancelled = 0x80;

    EvictionList(size_t pages, uint32_t* next, uint32_t* prev, std::atomic<uint8_t>* flags,
        std::atomic<uint8_t>* pins) noexcept;
    void unlink(size_t page) noexcept; // caller holds lock_
    void link_back(size_t page) noexcept; // caller holds lock_

    size_t pages_;
    // Entries hold page + 1; 0 is "none".
    uint32_t* next_;
    uint32_t* prev_;
    std::atomic<uint8_t>* flags_;
    std::atomic<uint8_t>* pins_;
    uint32_t head_ = 0;
    uint32_t tail_ = 0;
    std::atomic<size_t> size_ { 0 };
    std::mutex lock_;
};

} // namespace faultline::memory
