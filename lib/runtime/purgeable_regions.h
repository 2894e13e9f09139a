// runtime/purgeable_regions.h — purgeable memory, the runtime's room for it.
//
// allocate_purgeable maps a region viewing a PurgeableVMObject through the
// Mapper; set_volatile / set_nonvolatile validate their range like every
// structural call (RegionOperations: EINVAL, ENOENT, EPERM) and then change
// the pages' volatility through the Purger, with the commit ledger; purge
// requests go to the PurgeWorker, started with the first purgeable region.
// docs/purgeable.md has the semantics and the peers they were taken from.
//
// Locks: the runtime's API lock (passed in), then the purge lock. Neither is
// ever held while waiting for the purge worker, whose callbacks may call the
// runtime.
#pragma once

#include "memory/arena.h"
#include "memory/objects/purgeable_vm_object.h"
#include "os/features.h"
#include "runtime/commit_ledger.h"
#include "runtime/mapper.h"
#include "runtime/purge_worker.h"
#include "runtime/purger.h"
#include "runtime/region_operations.h"
#include "uffd/userfaultfd.h"

#include <faultline/purgeable.h>
#include <faultline/result.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace faultline {

class PurgeableRegions {
public:
    PurgeableRegions(Mapper& mapper, RegionOperations& ops, memory::Arena& arena, uffd::Userfaultfd& uffd, CommitLedger& ledger,
        const os::FeatureSet& features, const PurgeConfig& config, std::mutex& api_lock, size_t page_size) noexcept
        : mapper_(mapper)
        , ops_(ops)
        , arena_(arena)
        , uffd_(uffd)
        , ledger_(ledger)
        , features_(features)
        , config_(config)
        , api_lock_(api_lock)
        , page_(page_size)
        , purger_(uffd, ledger, page_size, config)
    {
    }

    // EINVAL for Shared, Stack or Clonable, an unknown purged_access, Callback without
    // a callback; then as map_anonymous.
    Result<void*> allocate(size_t size, const PurgeableOptions& options);
    Result<void*> allocate(const MapOptions& options, PurgedAccess mode, std::function<bool(void*)> on_purged_access);
    Result<void> set_volatile(uintptr_t address, size_t size, VolatileOptions options);
    Result<NonVolatileResult> set_nonvolatile(uintptr_t address, size_t size);
    Result<PurgeResult> purge(size_t bytes);
    Result<void> set_callbacks(PurgeCallbacks callbacks);
    PurgeStats stats() const;

    // Charges `bytes` to the ledger, purging volatile memory first when that
    // makes room (an allocation that would pass the commit limit). The API
    // lock must not be held.
    Result<void> charge(size_t bytes);
    // Mapper's retire hook (API lock held): the region's pages leave the
    // volatile set.
    void retire(const memory::Region& region) { purger_.retire(region); }
    // Runtime teardown, after the handler threads stopped.
    void stop() noexcept;
    void abandon() noexcept;
    // The purger's lock: while it is held no page is purged (clones copy
    // pages under it). Taken after the API lock.
    std::mutex& purge_lock() noexcept { return purger_.lock(); }
    // Tests: the worker (nullptr before the first purgeable region).
    PurgeWorker* worker() noexcept { return active_.load(std::memory_order_acquire); }

private:
    struct Target {
        memory::Region* region;
        memory::PurgeableVMObject* object;
        size_t first, end; // object pages
    };
    // Under the API lock: EINVAL / ENOENT / EPERM, or the purgeable pieces.
    Result<std::vector<Target>> resolve(uintptr_t address, size_t size) const;
    Result<void> ensure_worker();
    // Makes the SIGBUS marker of purged pages go away (they read zeros now).
    void clear_poison(const Target& t, const std::vector<Purger::Run>& runs);

    Mapper& mapper_;
    RegionOperations& ops_;
    memory::Arena& arena_;
    uffd::Userfaultfd& uffd_;
    CommitLedger& ledger_;
    const os::FeatureSet& features_;
    const PurgeConfig& config_;
    std::mutex& api_lock_;
    size_t page_;
    Purger purger_;
    std::mutex worker_lock_;
    std::unique_ptr<PurgeWorker> worker_;
    std::atomic<PurgeWorker*> active_ { nullptr }; // the same, for readers without worker_lock_
};

} // namespace faultline
