// memory/page_budget.h — how many cached file and store pages may be
// resident, and the faults waiting for room.
//
// The runtime's Config::memory_budget, in pages: a count charged when a read
// claims pages and uncharged when they leave the cache, with three marks:
//   high  — above it the evictor is woken (it evicts down to `low`);
//   hard  — the budget plus one eviction batch: no read is started that
//           would cross it. A fault that finds no room at all parks here
//           (its token) and is released, to fault again, when the evictor
//           frees room — a handler never waits.
// Should the evictor find nothing it may evict (every page pinned, or dirty
// with failing writes), it opens the budget (overrun) rather than leave
// faults parked forever: the fault path never hangs.
//
// Allocation-free and kernel-free (tests/unit/memory/page_budget_test.cc).
#pragma once

#include "memory/fault_context.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace faultline::memory {

class PageBudget {
public:
    static constexpr size_t kMaxWaiters = 256;

    // `wake(context)` is called (outside any lock, on the charging thread)
    // when the count first rises above `high` — it must not block.
    // High and low marks are percentages of the budget.
    PageBudget(size_t budget_pages, unsigned high_percent, unsigned low_percent, size_t batch_pages,
        void (*wake)(void*), void* context) noexcept;

    size_t budget() const noexcept { return budget_.load(std::memory_order_relaxed); }
    size_t high() const noexcept { return budget() * high_percent_ / 100; }
    size_t low() const noexcept { return budget() * low_percent_ / 100; }
    size_t batch() const noexcept { return batch_; }
    size_t resident() const noexcept { return resident_.load(std::memory_order_relaxed); }
    bool over_high() const noexcept { return resident() > high(); }
    bool above_low() const noexcept { return resident() > low(); }
    // Lowers the budget to `budget_pages` if that is lower (a second region
    // of a file naming a smaller budget for the file's cache).
    void tighten(size_t budget_pages) noexcept;

    // Charges up to `want` pages (at least `need` of them, need <= want) and
    // returns how many it charged: `want` where there is room, fewer down to
    // `need` near the hard mark, 0 when even `need` does not fit.
    size_t charge(size_t want, size_t need) noexcept;
    void uncharge(size_t pages) noexcept;

    // A fault that found no room: its token is posted with -EAGAIN when room
    // appears (release_waiters). False if the list is full (the fault then
    // retries at once).
    bool park(PendingToken token, CompletionPort* port) noexcept;
    // Evictor: room was freed (or the budget opened); every parked fault
    // faults again.
    void release_waiters() noexcept;
    size_t waiters() const noexcept;

    // Evictor: nothing could be evicted; let reads through past the hard
    // mark until room appears again.
    void set_overrun(bool on) noexcept;
    bool overrun() const noexcept { return overrun_.load(std::memory_order_relaxed); }

    uint64_t parked_total() const noexcept { return parked_total_.load(std::memory_order_relaxed); }
    // Times the budget was opened (set_overrun(true) while it was closed).
    uint64_t overruns() const noexcept { return overruns_.load(std::memory_order_relaxed); }

private:
    std::atomic<size_t> budget_;
    unsigned high_percent_, low_percent_;
    size_t batch_;
    void (*wake_)(void*);
    void* context_;
    std::atomic<size_t> resident_ { 0 };
    std::atomic<bool> overrun_ { false };
    std::atomic<uint64_t> parked_total_ { 0 };
    std::atomic<uint64_t> overruns_ { 0 };
    mutable std::mutex waiters_lock_;
    size_t waiter_count_ = 0;
    PendingToken tokens_[kMaxWaiters];
    CompletionPort* ports_[kMaxWaiters] {};
};

} // namespace faultline::memory
