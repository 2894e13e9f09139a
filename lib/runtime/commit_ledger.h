// runtime/commit_ledger.h — bytes committed against the runtime's limit.
//
// A committed region reserves its whole size when it is created and fails
// there with ENOMEM, never at fault time; unmapping gives its share back.
// Lock-free: map and unmap on different threads charge concurrently.
#pragma once

#include <faultline/result.h>

#include <atomic>
#include <cstddef>

namespace faultline {

class CommitLedger {
public:
    // `limit` 0 means MemTotal + SwapTotal.
    explicit CommitLedger(size_t limit) noexcept;

    // ENOMEM unless committed + reclaimable + bytes stays within the limit.
    Result<void> charge(size_t bytes) noexcept;
    void uncharge(size_t bytes) noexcept { committed_.fetch_sub(bytes, std::memory_order_relaxed); }
    size_t committed() const noexcept { return committed_.load(std::memory_order_relaxed); }
    size_t limit() const noexcept { return limit_; }

    // Purgeable memory (docs/purgeable.md, "Commit"). Volatile pages hand
    // their charge over as reclaimable: no longer committed (not
    // guaranteed), but still counted against the limit until a purge drops
    // them, so that an allocation needing the room purges them first instead
    // of overcommitting. Each pair of updates moves the total up before it
    // moves it down, so a racing charge() never sees room that is not there.
    void to_reclaimable(size_t bytes) noexcept
    {
        reclaimable_.fetch_add(bytes, std::memory_order_relaxed);
        committed_.fetch_sub(bytes, std::memory_order_relaxed);
    }
    void from_reclaimable(size_t bytes) noexcept
    {
        committed_.fetch_add(bytes, std::memory_order_relaxed);
        reclaimable_.fetch_sub(bytes, std::memory_order_relaxed);
    }
    // A purge dropped volatile pages that still held reclaimable charge.
    void reclaim(size_t bytes) noexcept { reclaimable_.fetch_sub(bytes, std::memory_order_relaxed); }
    // Puts back charge a region gives up as a whole right after (unmap of
    // a region with purged pages): no limit check, it leaves at once.
    void add_unchecked(size_t bytes) noexcept { committed_.fetch_add(bytes, std::memory_order_relaxed); }
    size_t reclaimable() const noexcept { return reclaimable_.load(std::memory_order_relaxed); }
    // Bytes a purge must reclaim before charge(bytes) can succeed: 0 when it
    // fits now, SIZE_MAX when no purge can make it fit.
    size_t shortfall(size_t bytes) const noexcept;

private:
    std::atomic<size_t> committed_ { 0 };
    std::atomic<size_t> reclaimable_ { 0 };
    size_t limit_;
};

} // namespace faultline
