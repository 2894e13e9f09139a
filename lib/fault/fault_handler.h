// fault/fault_handler.h — the threads that serve page faults.
//
// Each handler thread loops: read a batch of messages from the userfaultfd
// and hand it to the Dispatcher; drain the completion queue and let the
// Dispatcher resume those faults; sleep in poll(2) on the userfaultfd, the
// completion eventfd and the stop eventfd when there is nothing to do.
// fault/dispatcher.h has the path of one fault.
//
// Handler threads allocate nothing per fault, hold no lock across a system
// call that can wait, never touch the memory they serve, block every signal,
// and never throw.
#pragma once

#include "fault/completion_queue.h"
#include "fault/dispatcher.h"
#include "fault/pending_faults.h"
#include "fault/service_counters.h"
#include "fault/thread_fault_counters.h"
#include "io/io_worker.h"
#include "memory/region_tree.h"
#include "uffd/userfaultfd.h"

#include <faultline/result.h>
#include <faultline/types.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace faultline::fault {

struct FaultHandlerOptions {
    unsigned threads = 1;
    DispatchOptions dispatch;
    unsigned spin_us = 0;
    bool use_zeropage = true;
    bool use_poison = true;
    // I/O for file objects: an io_uring per handler thread, or (false) one
    // worker thread doing pread(2) where io_uring is unavailable.
    bool use_io_uring = true;
    unsigned ring_entries = 256;
    size_t pending_capacity = 4096;
};

class FaultHandler {
public:
    static Result<std::unique_ptr<FaultHandler>> try_create(uffd::Userfaultfd& uffd, memory::RegionTree& tree, const FaultHandlerOptions& options);
    ~FaultHandler();
    FaultHandler(const FaultHandler&) = delete;
    FaultHandler& operator=(const FaultHandler&) = delete;

    // Waits until no fault is parked pending a completion (the handler
    // threads keep running and resume them). Runtime shutdown calls this
    // before stop(), so no completion arrives after the threads are gone.
    void drain() noexcept { pending_.wait_until_none_parked(); }
    // Stops and joins the threads. Idempotent.
    void stop() noexcept;
    // In a fork child: the threads do not exist here, and the stop eventfd
    // is shared with the parent, whose threads must keep running. Forget
    // the threads without signalling or joining anything.
    void abandon() noexcept;

    // Waits until every batch a handler thread was serving when this was
    // called has been served and counted. A faulting thread can run on as
    // soon as its page is in — before its wake, when the page arrived
    // before the thread went to sleep — and the handler counts the fault
    // after the install: without this, a program reading its statistics
    // right after a touch could miss that touch's fault. Bounded; a no-op
    // on handler threads.
    void settle() const noexcept;

    memory::CompletionPort& completions() noexcept { return completions_; }
    const PendingFaultTable& pending() const noexcept { return pending_; }
    void fill_stats(RuntimeStats& stats) const { counters_.fill(stats); }
    std::vector<ThreadFaultCount> thread_counts() const { return thread_counts_.snapshot(); }
    const FaultHandlerOptions& options() const { return options_; }

private:
    FaultHandler(uffd::Userfaultfd& uffd, memory::RegionTree& tree, const FaultHandlerOptions& options);
    void run(unsigned index) noexcept;

    uffd::Userfaultfd& uffd_;
    FaultHandlerOptions options_;
    size_t page_size_;
    ServiceCounters counters_;
    ThreadFaultCounters thread_counts_;
    PendingFaultTable pending_;
    CompletionQueue completions_;
    Dispatcher dispatcher_;
    int stop_fd_ = -1;       // eventfd that wakes poll() for shutdown
    int empty_memfd_ = -1;   // for the SIGBUS fallback without UFFDIO_POISON
    std::unique_ptr<io::IoWorker> io_worker_; // without io_uring
    std::vector<std::thread> threads_;
    // Per thread: odd while it serves a batch or resumes completions. Made
    // odd before any page of the batch is installed, so a thread that has
    // seen its page arrive finds either an odd value or the counts.
    std::unique_ptr<std::atomic<uint64_t>[]> serving_;
    std::atomic<bool> stopped_ { false };
    std::atomic<unsigned> ready_threads_ { 0 };
    std::atomic<unsigned> failed_threads_ { 0 };
};

} // namespace faultline::fault
