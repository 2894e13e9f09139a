// runtime/purger.h — drops volatile pages, in purge order, and records them.
//
// The Purger knows every purgeable object (and where its page 0 is mapped),
// changes volatility for set_volatile / set_nonvolatile / unmap, and purges:
// it sorts the volatile spans of all objects by priority class, then by when
// they were made volatile (FIFO or LIFO), and drops whole spans until the
// request is met. Dropping a span, per run of volatile pages:
//   1. mark the pages Purging (a fault on one now waits for step 5's wake);
//   2. take them out of the page states (PageStates::take), remembering
//      which were populated — by the record or, since records are hints,
//      by the page tables (mincore);
//   3. MADV_DONTNEED the run (the kernel frees the pages);
//   4. record each page Purged if it was populated before step 3 or is now
//      (a fill racing the purge: reported, never lost unreported), else
//      Dropped (it held nothing: not reported);
//   5. wake the run's waiting threads, which fault again against the new state.
// The commit charge the spans' Volatile pages had handed over is released.
//
// purge() runs only on the purge worker thread (runtime/purge_worker.h), so
// that the user's callbacks never run on an API or handler thread; the purge
// lock is never held while a callback runs, so callbacks may call the
// runtime. Lock order: the runtime's API lock, then the purge lock.
#pragma once

#include "memory/objects/purgeable_vm_object.h"
#include "memory/region.h"
#include "runtime/commit_ledger.h"
#include "uffd/userfaultfd.h"

#include <faultline/purgeable.h>

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include <atomic>
#include <mutex>
#include <vector>

namespace faultline {

struct PurgeRequest {
    PurgeReason reason = PurgeReason::Explicit;
    // Stop once this many resident volatile bytes were dropped and this much
    // commit charge was released (kPurgeAll: go through every span).
    size_t resident_bytes = 0;
    size_t reclaim_bytes = 0;
    // Budget: purge what lies above PurgeConfig::budget, measured when the
    // worker gets to it.
    bool to_budget = false;
    // Spans overlapping these object pages are left alone (a re-commit that
    // makes room must not purge the range it is re-committing).
    struct Exclusion {
        const memory::PurgeableVMObject* object = nullptr;
        size_t first = 0, end = 0;
    };
    std::vector<Exclusion> exclude;
};

class Purger {
public:
    Purger(uffd::Userfaultfd& uffd, CommitLedger& ledger, size_t page_size, const PurgeConfig& config) noexcept
        : uffd_(uffd)
        , ledger_(ledger)
        , page_(page_size)
        , config_(config)
    {
    }

    std::mutex& lock() { return lock_; }

    // --- purge lock held ---------------------------------------------------
    void add(boost::intrusive_ptr<memory::PurgeableVMObject> object, uintptr_t base, bool committed);
    // Pages [first, end) of `object` become volatile (already volatile ones
    // keep their state and join the new span).
    void make_volatile(memory::PurgeableVMObject& object, size_t first, size_t end, PurgePriority priority, bool committed);
    // Bytes of fresh commit charge making [first, end) non-volatile needs
    // (its purged and dropped pages; its Volatile pages hand theirs back).
    size_t recommit_bytes(const memory::PurgeableVMObject& object, size_t first, size_t end) const noexcept;
    // Makes [first, end) non-volatile; the caller charged recommit_bytes().
    // Appends the purged pages (object pages, coalesced) to `purged`;
    // returns the pages whose volatility changed (whole spans: a superset
    // of [first, end)). Their SIGBUS marks stay for take_poisoned().
    struct Run {
        size_t first, end;
    };
    Run make_nonvolatile(memory::PurgeableVMObject& object, size_t first, size_t end, bool committed, std::vector<Run>& purged);
    // Appends the pages of `within` that hold a SIGBUS marker to `poisoned`
    // and forgets their marks. Called once the object's SIGBUS deliveries
    // have drained (PurgeableVMObject::wait_for_sigbus_deliveries), so that
    // no marker is placed after it.
    void take_poisoned(memory::PurgeableVMObject& object, Run within, std::vector<Run>& poisoned);
    // A region of a purgeable object is being unmapped: its pages leave the
    // volatile set and their charge is put back as committed, so that the
    // unmap's uncharge of the whole size balances.
    void retire(const memory::Region& region);

    // --- any thread, takes the purge lock ------------------------------------
    PurgeStats totals() const;
    size_t volatile_resident() const;
    void set_callbacks(PurgeCallbacks callbacks);

    // --- the purge worker thread only ---------------------------------------
    PurgeResult purge(const PurgeRequest& request);

    std::atomic<uint64_t> pressure_events { 0 };

private:
    struct Entry {
        boost::intrusive_ptr<memory::PurgeableVMObject> object;
        uintptr_t base; // where object page 0 is mapped
        bool committed;
    };
    struct Candidate {
        boost::intrusive_ptr<memory::PurgeableVMObject> object;
        uintptr_t base;
        bool committed;
        memory::VolatileSpans::Span span;
    };
    std::vector<Candidate> candidates(const PurgeRequest& request);
    // Purge lock held: drops the volatile pages of [first, end).
    void purge_span(const Candidate& c, size_t first, size_t end, PurgeResult& result);
    size_t volatile_resident_locked() const;
    void prune();

    uffd::Userfaultfd& uffd_;
    CommitLedger& ledger_;
    size_t page_;
    const PurgeConfig& config_;
    mutable std::mutex lock_;
    std::vector<Entry> entries_;
    uint64_t sequence_ = 0;
    std::mutex callbacks_lock_;
    PurgeCallbacks callbacks_;
    std::atomic<uint64_t> purges_ { 0 }, purged_bytes_ { 0 }, vetoes_ { 0 };
    std::atomic<uint64_t> budget_purges_ { 0 }, commit_purges_ { 0 };
};

} // namespace faultline
