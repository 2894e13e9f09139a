// fault/dispatcher.h — decode a fault, route it to its region's object, and
// act on the answer.
//
// The path of one fault, top to bottom (docs/design.md):
//   1. decode the message: page, kind (missing, write-protect, minor),
//      write, thread id;
//   2. claim the page in the pending table — a page already being served
//      (this batch, another batch, another handler thread, or parked
//      pending) makes the message a duplicate: dropped, the wake that ends
//      the first one releases this thread too;
//   3. find the region (shared tree lock, in-flight count taken);
//   4. region -> object: handle_fault(context, port) places pages through
//      the port and answers with an Outcome;
//   5. act on it: Installed -> release the slot, wake the present range;
//      Pending -> park the slot, the region stays pinned until a
//      completion resumes it; Retry/RegionGone -> release, wake (the
//      thread faults again or meets the unmapped range); Sigbus ->
//      poison, release, wake;
//   6. once per batch, wake the coalesced runs of what was served.
// No allocation, no exception, no lock held across a system call that can
// wait; memory the runtime serves is never touched.
#pragma once

#include "fault/completion_queue.h"
#include "fault/fault_port.h"
#include "fault/pending_faults.h"
#include "fault/service_counters.h"
#include "fault/thread_fault_counters.h"
#include "memory/region_tree.h"

#include <linux/userfaultfd.h>

#include <cstddef>

namespace faultline::fault {

struct DispatchOptions {
    memory::FaultAround around { 32, 512 };
    WakeOrder wake_order = WakeOrder::Adaptive;
    bool have_thread_id = true;
};

class Dispatcher {
public:
    static constexpr size_t kBatch = 64;
    // Windows a stream is filled ahead after its thread is woken. Two were
    // measured no faster than one (the handler CPU's fill rate is the limit,
    // docs/performance.md) and risk twice the unused memory.
    static constexpr unsigned kReadaheadDepth = 1;

    Dispatcher(memory::RegionTree& tree, PendingFaultTable& pending, CompletionQueue& completions, ServiceCounters& counters,
        ThreadFaultCounters& threads, const DispatchOptions& options) noexcept;

    // Serves up to kBatch page-fault messages.
    void serve(const uffd_msg* messages, size_t count, FaultPort& port) noexcept;
    // Finishes the parked faults named by these completions.
    void resume(const CompletionQueue::Completion* completions, size_t count, FaultPort& port) noexcept;

    const DispatchOptions& options() const noexcept { return options_; }

private:
    struct Served {
        memory::Region* region;
        uintptr_t page;
        bool write;
    };
    // What one batch releases and wakes at its end. Claims are held until
    // then, so that further messages for a page served earlier in the same
    // batch are dropped as duplicates; they are released before the wake,
    // which is what makes dropping them safe (fault/pending_faults.h).
    struct BatchEnd {
        explicit BatchEnd(size_t page_size) noexcept : wakes(page_size) {}
        WakeSet wakes;
        memory::PendingToken releases[kBatch];
        size_t release_count = 0;
        // Faults whose object left work for after the wake (around_later),
        // their regions still pinned.
        Served deferred[kBatch];
        size_t deferred_count = 0;
        void release_later(memory::PendingToken token) noexcept
        {
            if (token.valid())
                releases[release_count++] = token;
        }
    };
    static_assert(WakeSet::kCapacity >= kBatch, "one batch never fills the wake set, so no wake precedes a release");

    // Acts on an object's answer for a fault that holds `token` (possibly
    // invalid: the table was full) and a pin on `region`. Returns true when
    // the caller must keep the region pinned (parked, or deferred
    // fault-around); false when the pin was dropped here.
    bool settle(const memory::Outcome& outcome, memory::Region& region, const memory::FaultContext& ctx, int tid,
        memory::PendingToken token, bool resumed, BatchEnd& end, FaultPort& port) noexcept;
    // Releases the batch's claims, then wakes its runs; then the work left
    // for after the wake (fault-around, readahead), whose windows are woken
    // in turn.
    void finish(BatchEnd& end, FaultPort& port) noexcept;
    memory::FaultContext context_for(memory::Region& region, uintptr_t page, uffd::FaultKind kind, bool write,
        memory::PendingToken token, FaultPort& port) const noexcept;

    memory::RegionTree& tree_;
    PendingFaultTable& pending_;
    CompletionQueue& completions_;
    ServiceCounters& counters_;
    ThreadFaultCounters& threads_;
    DispatchOptions options_;
    size_t page_size_;
};

} // namespace faultline::fault
