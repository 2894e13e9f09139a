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

    Result<void> charge(size_t bytes) noexcept;
    void uncharge(size_t bytes) noexcept { committed_.fetch_sub(bytes, std::memory_order_relaxed); }
    size_t committed() const noexcept { return committed_.load(std::memory_order_relaxed); }
    size_t limit() const noexcept { return limit_; }

private:
    std::atomic<size_t> committed_ { 0 };
    size_t limit_;
};

} // namespace faultline
