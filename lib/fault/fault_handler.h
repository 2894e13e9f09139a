// fault/fault_handler.h — the threads that serve page faults.
//
// The path of one fault, top to bottom:
//   1. a handler thread reads a batch of uffd_msg from the userfaultfd;
//   2. for each page-fault message: dedupe against the batch, look the page
//      up in the RegionTree (shared lock, in-flight count taken);
//   3. Region::handle_fault -> VMObject::handle_missing_page decides what
//      the page is and asks the PageInstaller to place it (DONTWAKE);
//   4. if it cannot be provided, the faulting thread gets SIGBUS;
//   5. one UFFDIO_WAKE for the batch releases the waiting threads.
// Handler threads allocate nothing per fault, hold no lock across a system
// call that can wait, never touch the memory they serve, and never throw.
#pragma once

#include "fault/page_installer.h"
#include "fault/thread_fault_counters.h"
#include "memory/region_tree.h"
#include "os/userfaultfd.h"

#include <faultline/result.h>
#include <faultline/types.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace faultline::fault {

struct FaultHandlerOptions {
    unsigned threads = 1;
    unsigned fault_around_pages = 16;
    unsigned spin_us = 0;
    bool wake_before_fault_around = false;
    bool use_zeropage = true;
    bool use_poison = true;
    bool have_thread_id = true;
};

class FaultHandler {
public:
    static Result<std::unique_ptr<FaultHandler>> try_create(os::Userfaultfd& uffd, memory::RegionTree& tree, const FaultHandlerOptions& options);
    ~FaultHandler();
    FaultHandler(const FaultHandler&) = delete;
    FaultHandler& operator=(const FaultHandler&) = delete;

    // Stops and joins the threads. Idempotent.
    void stop() noexcept;

    void fill_stats(RuntimeStats& stats) const;
    std::vector<ThreadFaultCount> thread_counts() const { return thread_counts_.snapshot(); }
    const FaultHandlerOptions& options() const { return options_; }

private:
    static constexpr size_t kBatch = 64;

    FaultHandler(os::Userfaultfd& uffd, memory::RegionTree& tree, const FaultHandlerOptions& options);
    void run() noexcept;
    void serve_batch(const uffd_msg* msgs, size_t count, PageInstaller& installer) noexcept;
    void deliver_sigbus(uintptr_t page, int tid, memory::Region& region) noexcept;

    os::Userfaultfd& uffd_;
    memory::RegionTree& tree_;
    FaultHandlerOptions options_;
    size_t page_size_;
    int stop_fd_ = -1;       // eventfd that wakes poll() for shutdown
    int empty_memfd_ = -1;   // for the SIGBUS fallback without UFFDIO_POISON
    std::vector<std::thread> threads_;
    std::atomic<bool> stopped_ { false };
    std::atomic<unsigned> ready_threads_ { 0 };
    std::atomic<unsigned> failed_threads_ { 0 };

    InstallerCounters installer_counters_;
    ThreadFaultCounters thread_counts_;
    std::atomic<uint64_t> fault_events_ { 0 };
    std::atomic<uint64_t> deduplicated_ { 0 };
    std::atomic<uint64_t> wakes_ { 0 };
    std::atomic<uint64_t> stale_ { 0 };
    std::atomic<uint64_t> sigbus_ { 0 };
    std::atomic<uint64_t> batches_ { 0 };
};

} // namespace faultline::fault
