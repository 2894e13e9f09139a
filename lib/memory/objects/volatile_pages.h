// memory/objects/volatile_pages.h — the volatility of each page of a
// purgeable object.
//
// One byte per page in a MAP_NORESERVE mapping, like PageStates: a huge
// object costs nothing until its pages are made volatile, and the fault path
// reads a page's volatility with one relaxed load, allocating nothing.
//
// Writers are the API thread (set_volatile / set_nonvolatile) and the purge
// worker, serialised by the runtime's purge lock; handler threads only read,
// except for the Poisoned bit they set when they deliver SIGBUS for a purged
// page. Volatility lives per page of the object, not per region, so that the
// pieces of a split region (and, later, clones) agree on it.
#pragma once

#include <faultline/result.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace faultline::memory {

enum class Volatility : uint8_t {
    NonVolatile = 0, // committed; never purged
    Volatile = 1,    // may be purged; its commit charge is reclaimable
    Purged = 2,      // volatile, and its contents were dropped while populated: reported
    Dropped = 3,     // volatile, dropped while it held nothing: not reported, no charge
    Purging = 4,     // a purge is dropping it now; a fault waits for the purger's wake
};

class VolatilePages {
public:
    // Set on a purged page that was answered with SIGBUS: the page holds a
    // poison marker (or a SIGBUS mapping) until it is made non-volatile.
    static constexpr uint8_t kPoisoned = 0x80;

    static Result<VolatilePages> create(size_t pages) noexcept;
    VolatilePages(VolatilePages&&) noexcept;
    VolatilePages& operator=(VolatilePages&&) = delete;
    VolatilePages(const VolatilePages&) = delete;
    ~VolatilePages();

    size_t size() const noexcept { return pages_; }
    Volatility get(size_t page) const noexcept
    {
        return Volatility(bytes_[page].load(std::memory_order_acquire) & ~kPoisoned);
    }
    bool poisoned(size_t page) const noexcept { return bytes_[page].load(std::memory_order_relaxed) & kPoisoned; }
    // Purge lock held. Release order: a fault that reads the new state sees
    // everything the writer did before (the pages dropped).
    void set(size_t page, Volatility v) noexcept { bytes_[page].store(uint8_t(v), std::memory_order_release); }
    // Keeps the Poisoned bit — atomically: a handler thread may set it
    // (mark_poisoned) at the same moment, and a load-then-store would lose
    // it, leaving a SIGBUS marker nobody clears (set_nonvolatile collects
    // the marked pages after this).
    void set_keeping_poison(size_t page, Volatility v) noexcept
    {
        uint8_t old = bytes_[page].load(std::memory_order_relaxed);
        while (!bytes_[page].compare_exchange_weak(old, uint8_t(uint8_t(v) | (old & kPoisoned)), std::memory_order_release,
            std::memory_order_relaxed)) {
        }
    }
    // Fault path.
    void mark_poisoned(size_t page) noexcept { bytes_[page].fetch_or(kPoisoned, std::memory_order_relaxed); }
    // Purge lock held: the page's marker was cleared.
    void clear_poisoned(size_t page) noexcept { bytes_[page].fetch_and(uint8_t(~kPoisoned), std::memory_order_release); }

private:
    VolatilePages(std::atomic<uint8_t>* bytes, size_t pages) noexcept : bytes_(bytes), pages_(pages) {}
    std::atomic<uint8_t>* bytes_ = nullptr;
    size_t pages_ = 0;
};

} // namespace faultline::memory
