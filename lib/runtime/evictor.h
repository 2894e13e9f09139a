// runtime/evictor.h — keeping cached file and store pages under the memory
// budget.
//
// One worker thread (never a fault handler) per runtime with a budget. It
// sleeps until a budget (the runtime's, or a cache's own from a region's
// budget) rises above its high mark or a fault parks for room, then evicts
// in batches down to the low mark:
//
//   1. choose: the cache's eviction list, oldest first. Under Clock a page
//      touched since the evictor last passed it gets a second chance: its
//      referenced bit is cleared and it is unmapped from the shared views
//      (kept in the cache), so its next touch is a minor fault that sets
//      the bit again. Fifo takes pages in order.
//   2. claim: EvictionList::begin_evict (a pinned page is skipped).
//   3. write back the dirty ones: re-protect them in every shared view, clear
//      the dirty bit, write them to the file or store. A failed write puts
//      the dirty bit back and the page stays (counted; other pages go).
//   4. drop: EvictionList::commit_evict — refused if a fault pinned the page
//      meanwhile — then FileCache::evict_drop.
//   5. release the faults parked for room.
// If a whole pass frees nothing while faults wait, the budget is opened
// (overrun) until it frees something again: faults are never left parked.
//
// The evictor never takes the runtime's API lock: unmap waits for a
// region's faults, and a fault may be parked waiting for this thread. It
// walks the region tree under the tree's shared lock, which unmap takes
// exclusively before it gives a range back, so it never touches a range
// that has changed hands.
#pragma once

#include "memory/objects/file_cache.h"
#include "memory/objects/swap_backed_vm_object.h"
#include "memory/page_budget.h"
#include "memory/region_tree.h"
#include "runtime/swap_out.h"
#include "uffd/userfaultfd.h"

#include <faultline/result.h>
#include <faultline/runtime.h>

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace faultline {

class Evictor {
public:
    Evictor(memory::RegionTree& tree, uffd::Userfaultfd& uffd, size_t page_size, const Config& config);
    ~Evictor();
    Evictor(const Evictor&) = delete;
    Evictor& operator=(const Evictor&) = delete;

    // The runtime's budget (null without Config::memory_budget).
    memory::PageBudget* budget() noexcept { return budget_.get(); }
    const std::shared_ptr<memory::PageBudget>& shared_budget() const noexcept { return budget_; }
    // Makes `cache` evictable (with `own_bytes` of budget of its own, 0 =
    // none) and starts the thread on first use. API threads.
    Result<void> add(const boost::intrusive_ptr<memory::FileCache>& cache, uint64_t own_bytes);
    void remove(const memory::FileCache* cache);
    // The same for anonymous memory under the budget (the swap pager:
    // runtime/swap_out.h).
    Result<void> add(const boost::intrusive_ptr<memory::SwapBackedVMObject>& object);
    void remove(const memory::SwapBackedVMObject* object);
    // Lets go of swap-backed objects no region views any more (after an
    // unmap); their slots and charges go with them.
    void prune_swaps();
    // Fork preparation: stops evicting (until resume_after_fork) and reads
    // every swapped page back in, with the budget opened meanwhile so that
    // no swap-in waits for the stopped evictor. A fork child then finds all
    // of its anonymous memory in its copy of the mappings.
    void prepare_fork();
    void resume_after_fork();
    void wake() noexcept;
    // Stops the thread, then opens every budget and releases the faults
    // parked on them (runtime destruction: nothing evicts any more).
    void shutdown() noexcept;
    // In a fork child: the thread is the parent's. The object must then not
    // be destroyed either (its condition variable counts the parent's
    // thread as a waiter): the runtime leaks its copy.
    void abandon() noexcept;

    struct Totals {
        uint64_t evictions_clean = 0, evictions_dirty = 0, write_errors = 0, referenced_refaults = 0;
        // The swap pager's.
        uint64_t swapped_out = 0, swapped_in = 0, swap_clean_drops = 0, swap_write_errors = 0, swap_read_errors = 0,
                 swap_slots_reclaimed = 0;
    };
    Totals totals() const;

private:
    static void wake_thunk(void* self) noexcept { static_cast<Evictor*>(self)->wake(); }
    void run() noexcept;
    // Evicts up to `want` pages of `cache`; returns the pages dropped.
    size_t evict(memory::FileCache& cache, size_t want);
    // Calls fn(address, bytes) for every shared view of cache pages
    // [first, first+count), under the tree's shared lock.
    template <typename Fn>
    void for_each_shared_view(const memory::FileCache& cache, size_t first, size_t count, Fn&& fn);
    bool write_back(memory::FileCache& cache, size_t first, size_t count, uint64_t size);
    Result<void> start_thread();
    static void add_swap_counters(Totals& t, const memory::SwapBackedVMObject& object) noexcept;

    memory::RegionTree& tree_;
    uffd::Userfaultfd& uffd_;
    size_t page_;
    Config config_;
    std::shared_ptr<memory::PageBudget> budget_; // shared with the caches, which may outlive this
    mutable std::mutex lock_;         // woken_, stopping_ (handlers take it through wake())
    std::mutex pass_lock_;            // held by an eviction pass; caches_ changes only under it
    mutable std::mutex registry_lock_; // caches_ and retired_, for readers that must not wait for a pass
    std::condition_variable wakeup_;
    bool woken_ = false;
    bool stopping_ = false;
    bool abandoned_ = false;
    std::vector<boost::intrusive_ptr<memory::FileCache>> caches_;
    std::vector<boost::intrusive_ptr<memory::SwapBackedVMObject>> swaps_;
    SwapOut swap_out_;
    bool fork_paused_ = false;
    Totals retired_; // counters of caches removed since
    // Passes in a row that freed nothing while faults waited, with no read
    // in flight, and when the first of them was (the evictor thread's own).
    // The budget is opened only after both many passes and a time: passes
    // alone are 0.5 ms apart, and a streak of 20 (a hot set re-referenced
    // under the clock, pages pinned by a burst of writes) lasts that little
    // on a fast machine — a wait that short is not a wait for ever, and an
    // overrun is, with a fork's, the one way past the budget
    // (RuntimeStats::budget_overruns counts both).
    unsigned stalled_passes_ = 0;
    std::chrono::steady_clock::time_point stalled_since_ {};
    static constexpr unsigned kStalledPassesBeforeOverrun = 20;
    static constexpr std::chrono::milliseconds kStalledTimeBeforeOverrun { 100 };
    std::thread thread_;
};

} // namespace faultline
