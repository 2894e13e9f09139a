// runtime/runtime_core.h — what a Runtime is, and the order of its calls.
//
// RuntimeCore owns the userfaultfd, the arena, the region tree, the fault
// handler and the commit ledger, and orchestrates: each API call takes the
// API lock, checks that this is the process that created the runtime, and
// hands the work to the room that does it — RegionOperations (the shared
// validate/cover/check/isolate preamble), Mapper (map, unmap), CommitLedger,
// RegionStatistics (the page tables) and the JSON report.
//
// Locks, in the order they are taken (docs/design.md):
//   1. api_lock_   serialises structural changes and statistics snapshots
//                  on API threads; may be held across system calls and
//                  across the wait for a retired region's faults, never
//                  across a page-table scan.
//   2. the tree's shared_mutex: exclusive for each insert/remove/placement,
//                  never across a system call; handler threads take it
//                  shared for one lookup.
//   (3. the pending-fault table's and the completion queue's mutexes: held
//       for a few loads and stores by handler and worker threads.)
// Handler threads take only (2) and (3). Nothing is held across I/O.
#pragma once

#include "fault/fault_handler.h"
#include "memory/arena.h"
#include "memory/region_tree.h"
#include "memory/vm_object.h"
#include "os/features.h"
#include "runtime/commit_ledger.h"
#include "runtime/evictor.h"
#include "runtime/file_regions.h"
#include "runtime/fork_guard.h"
#include "runtime/mapper.h"
#include "runtime/purgeable_regions.h"
#include "runtime/cow_regions.h"
#include "runtime/region_operations.h"
#include "runtime/region_statistics.h"
#include "runtime/stat_endpoint.h"
#include "uffd/userfaultfd.h"

#include <faultline/runtime.h>

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <pthread.h>
#include <string>
#include <vector>

namespace faultline {

class RuntimeCore {
public:
    static Result<std::unique_ptr<RuntimeCore>> try_create(Config config);
    ~RuntimeCore();

    Result<void*> map_anonymous(const MapOptions& options);
    // Maps a region viewing `object` (any VMObject kind; the tests map their
    // own). Nothing is charged to the commit limit.
    Result<void*> map_object(const MapOptions& options, boost::intrusive_ptr<memory::VMObject> object);
    Result<void*> map_file(int fd, const FileMapOptions& options);
    Result<void*> map_file(const char* path, const FileMapOptions& options);
    Result<void*> map_store(std::shared_ptr<Store> store, const StoreMapOptions& options);
    Result<void> sync(uintptr_t address, size_t size, SyncFlags flags);
    Result<void> unmap(uintptr_t address, size_t size);
    Result<void> protect(uintptr_t address, size_t size, Access access);
    Result<void> set_name(uintptr_t address, size_t size, std::string_view name);
    Result<void> make_immutable(uintptr_t address, size_t size);
    Result<void> discard(uintptr_t address, size_t size);

    // Purgeable memory (runtime/purgeable_regions.h).
    Result<void*> allocate_purgeable(size_t size, const PurgeableOptions& options);
    Result<void*> clone(uintptr_t address, std::string_view name);
    Result<void*> snapshot(uintptr_t address, std::string_view name);
    Result<void> rollback(uintptr_t address, uintptr_t snapshot);
    Result<void> set_volatile(uintptr_t address, size_t size, VolatileOptions options);
    Result<NonVolatileResult> set_nonvolatile(uintptr_t address, size_t size);
    Result<PurgeResult> purge(size_t bytes);
    Result<void> set_purge_callbacks(PurgeCallbacks callbacks);
    PurgeStats purge_stats() const { return purgeable_.stats(); }
    PurgeableRegions& purgeable() { return purgeable_; }

    Result<RegionStats> region_stats(uintptr_t address) const;
    // These three have no error channel; in a fork child they describe the
    // child's inert copy.
    std::vector<RegionStats> regions() const;
    RuntimeStats stats() const;
    std::string to_json() const;

    uintptr_t arena_base() const { return arena_.base(); }
    size_t arena_size() const { return arena_.size(); }
    const os::FeatureSet& features() const { return features_; }
    bool user_mode_only() const { return uffd_.user_mode_only(); }
    std::string stat_address() const { return stat_endpoint_ ? stat_endpoint_->address() : std::string(); }
    const Config& config() const { return config_; }
    size_t page_size() const { return page_; }
    // Where objects that answer Pending post their completions.
    memory::CompletionPort& completions() { return handler_->completions(); }
    uffd::Userfaultfd& userfaultfd() { return uffd_; }
    // False in a fork child's copy of this runtime (runtime/fork_guard.h).
    bool in_owner() const noexcept { return fork_guard_.in_owner(); }
    // fork() (runtime/file_fork_plan.h): takes the API lock and prepares the
    // file regions; the lock is held until after_fork() in both processes.
    void prepare_fork() noexcept;
    void after_fork(bool in_child) noexcept;

private:
    RuntimeCore(Config config, uffd::Userfaultfd uffd, memory::Arena arena, os::FeatureSet features);
    // ECHILD in a fork child: the copy is inert.
    Result<void> check_owner() const noexcept;
    // Snapshots every region (under the API lock), then measures them with
    // no lock held.
    std::vector<RegionSnapshot> snapshot_all() const;
    // Waits for batches the handler threads are serving (FaultHandler::settle).
    void settle_counts() const noexcept;
    // The swap file, its slots and the budget they share (Config::swap).
    Result<std::shared_ptr<memory::SwapSpace>> create_swap();

    Config config_;
    ForkGuard fork_guard_;
    // Destroyed last: waits for store threads that could not be joined
    // (io/store_queue.h), so that every store is released by the time the
    // runtime is gone. Not in a fork child, whose copies of those threads
    // never existed.
    struct StoreThreadsGone {
        const ForkGuard& guard;
        ~StoreThreadsGone()
        {
            if (guard.in_owner())
                io::StoreQueue::wait_for_detached();
        }
    } store_threads_gone_ { fork_guard_ };
    size_t page_;
    uffd::Userfaultfd uffd_;
    memory::Arena arena_;
    os::FeatureSet features_;
    memory::RegionTree tree_;
    CommitLedger ledger_;
    RegionOperations ops_;
    Mapper mapper_;
    RegionStatistics statistics_;
    // Owned through a pointer so that a fork child can leak its copy: the
    // copy's condition variable still counts the parent's evictor thread
    // as a waiter, and destroying it would wait for that thread forever.
    std::unique_ptr<Evictor> evictor_;
    // Null without a budget, with Config::swap off, or without write-protect
    // faults on anonymous memory.
    std::shared_ptr<memory::SwapSpace> swap_;
    FileRegions files_;
    PurgeableRegions purgeable_;
    CowRegions cow_;
    std::unique_ptr<fault::FaultHandler> handler_;
    // Shared file regions that track writes asynchronously (WP_ASYNC) are
    // registered with a second userfaultfd, served by handlers of its own.
    std::unique_ptr<uffd::Userfaultfd> async_uffd_;
    std::unique_ptr<fault::FaultHandler> async_handler_; // started with the first region that needs it
    std::atomic<fault::FaultHandler*> async_service_ { nullptr }; // the same, for readers without the API lock
    fault::FaultHandlerOptions handler_options_;
    mutable std::mutex api_lock_;
    bool fork_prepared_ = false; // prepare_fork() holds api_lock_
    // The thread holding api_lock_ across a fork (set while it does): see
    // discard().
    std::atomic<bool> fork_lock_held_ { false };
    std::atomic<pthread_t> fork_lock_holder_ {};
    // Started last and stopped first (~RuntimeCore): its thread calls
    // to_json(), which reads every member above.
    std::unique_ptr<StatEndpoint> stat_endpoint_;
};

} // namespace faultline
