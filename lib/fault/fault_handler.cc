#include "fault/fault_handler.h"

#include "log.h"
#include "os/virtual_memory.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace faultline::fault {

namespace {
inline void cpu_relax() noexcept
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}
}

FaultHandler::FaultHandler(os::Userfaultfd& uffd, memory::RegionTree& tree, const FaultHandlerOptions& options)
    : uffd_(uffd)
    , tree_(tree)
    , options_(options)
    , page_size_(os::page_size())
{
}

Result<std::unique_ptr<FaultHandler>> FaultHandler::try_create(os::Userfaultfd& uffd, memory::RegionTree& tree, const FaultHandlerOptions& options)
{
    if (options.threads == 0 || options.threads > 64)
        return fail(EINVAL, "handler_threads must be between 1 and 64");
    if (options.fault_around_pages == 0 || options.fault_around_pages > 512)
        return fail(EINVAL, "fault_around_pages must be between 1 and 512");
    std::unique_ptr<FaultHandler> handler(new FaultHandler(uffd, tree, options));
    handler->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (handler->stop_fd_ < 0)
        return fail(errno, "eventfd failed");
    // Created even when UFFDIO_POISON is available: poison can fail too
    // (and tests inject that), and the fallback must not need a system call
    // that allocates a file on the fault path.
    handler->empty_memfd_ = os::create_empty_memfd();
    if (handler->empty_memfd_ < 0)
        return fail(-handler->empty_memfd_, "memfd_create failed (needed for the SIGBUS fallback)");
    // Handler threads must never run the application's signal handlers: a
    // handler that touched a region would deadlock its own fault service.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
        for (unsigned i = 0; i < options.threads; ++i)
            handler->threads_.emplace_back([h = handler.get()] { h->run(); });
    } catch (const std::system_error& e) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        handler->stop();
        return fail(EAGAIN, std::string("cannot start handler thread: ") + e.what());
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    // Wait until every thread has its installer, so a failure to set one up
    // is reported here rather than as a fault nobody serves.
    while (handler->ready_threads_.load() + handler->failed_threads_.load() < options.threads)
        std::this_thread::yield();
    if (handler->failed_threads_.load() > 0) {
        handler->stop();
        return fail(ENOMEM, "handler thread could not allocate its zero buffer");
    }
    return handler;
}

FaultHandler::~FaultHandler()
{
    stop();
    if (stop_fd_ >= 0)
        close(stop_fd_);
    if (empty_memfd_ >= 0)
        close(empty_memfd_);
}

void FaultHandler::stop() noexcept
{
    if (stopped_.exchange(true))
        return;
    uint64_t one = 1;
    if (stop_fd_ >= 0)
        (void)!write(stop_fd_, &one, sizeof one);
    for (auto& t : threads_)
        if (t.joinable())
            t.join();
}

void FaultHandler::run() noexcept
{
    pthread_setname_np(pthread_self(), "faultline-uffd");
    PageInstaller installer(uffd_, page_size_, options_.fault_around_pages, options_.use_zeropage, installer_counters_);
    if (!installer.ready()) {
        failed_threads_.fetch_add(1);
        return;
    }
    ready_threads_.fetch_add(1);

    uffd_msg msgs[kBatch];
    pollfd fds[2] = { { uffd_.fd(), POLLIN, 0 }, { stop_fd_, POLLIN, 0 } };
    const auto spin = std::chrono::microseconds(options_.spin_us);
    auto last_event = std::chrono::steady_clock::now();
    for (;;) {
        // Drain everything pending before sleeping: under load the next
        // batch is usually already queued, and poll() costs a system call.
        long n = uffd_.read_events(msgs, kBatch);
        if (n > 0) {
            batches_.fetch_add(1, std::memory_order_relaxed);
            serve_batch(msgs, size_t(n), installer);
            if (spin.count())
                last_event = std::chrono::steady_clock::now();
            continue;
        }
        if (n < 0 && n != -EINTR) {
            log::error("userfaultfd read failed: {}; handler thread stops", strerror(int(-n)));
            return;
        }
        // A thread that has just been served usually faults again soon: a
        // handler still awake answers without the cost of waking it.
        if (spin.count() && std::chrono::steady_clock::now() - last_event < spin) {
            if (stopped_.load(std::memory_order_relaxed))
                return;
            cpu_relax();
            continue;
        }
        if (poll(fds, 2, -1) < 0 && errno != EINTR) {
            log::error("poll on userfaultfd failed: {}; handler thread stops", strerror(errno));
            return;
        }
        if (fds[1].revents & POLLIN)
            return;
        if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL))
            return;
    }
}

void FaultHandler::serve_batch(const uffd_msg* msgs, size_t count, PageInstaller& installer) noexcept
{
    // Everything below lives on this thread's stack: nothing is allocated
    // per fault.
    uintptr_t seen[kBatch];
    size_t seen_count = 0;
    struct Served {
        memory::Region* region;
        uintptr_t page;
        bool write;
    } served[kBatch];
    size_t served_count = 0;
    uintptr_t wake_lo = UINTPTR_MAX;
    uintptr_t wake_hi = 0;

    // Phase 1: the pages threads are waiting for.
    for (size_t i = 0; i < count; ++i) {
        const uffd_msg& msg = msgs[i];
        if (msg.event != UFFD_EVENT_PAGEFAULT) {
            // We enable no non-cooperative events; anything else is a kernel
            // we do not understand. Ignoring it cannot leave a thread waiting.
            log::debug("ignoring userfaultfd event {}", int(msg.event));
            continue;
        }
        fault_events_.fetch_add(1, std::memory_order_relaxed);
        const uintptr_t page = uintptr_t(msg.arg.pagefault.address) & ~uintptr_t(page_size_ - 1);
        const bool write = msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE;
        const int tid = options_.have_thread_id ? int(msg.arg.pagefault.feat.ptid) : 0;
        thread_counts_.record(tid);

        if (page < wake_lo)
            wake_lo = page;
        if (page + page_size_ > wake_hi)
            wake_hi = page + page_size_;

        // Several threads faulting one page send one message each; the
        // batch's wake releases them all, so only the first is served.
        bool duplicate = false;
        for (size_t j = 0; j < seen_count && !duplicate; ++j)
            duplicate = seen[j] == page;
        if (duplicate) {
            deduplicated_.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        seen[seen_count++] = page;

        memory::Region* region = tree_.acquire_for_fault(page);
        if (!region) {
            // The region was unmapped after the fault was queued. The wake
            // makes the thread retry; the range is PROT_NONE by now (or
            // belongs to a new region), so it gets SIGSEGV or a fresh fault.
            stale_.fetch_add(1, std::memory_order_relaxed);
            log::debug("fault at {:#x}: no region (unmapped while in flight)", page);
            continue;
        }
        memory::FaultOutcome outcome = region->handle_fault(page, write, installer, options_.fault_around_pages);
        log::trace("fault at {:#x} {} tid {} -> {}", page, write ? "write" : "read", tid, int(outcome));
        if (outcome == memory::FaultOutcome::Installed && options_.fault_around_pages > 1) {
            if (options_.wake_before_fault_around) {
                // Keep the region in flight for phase 2.
                served[served_count++] = { region, page, write };
                continue;
            }
            region->fault_around(page, write, installer, options_.fault_around_pages);
        }
        if (outcome == memory::FaultOutcome::Sigbus)
            deliver_sigbus(page, tid, *region);
        tree_.release_after_fault(*region);
    }

    // One wake for the batch releases every waiting thread.
    if (wake_hi > wake_lo) {
        long rc = uffd_.wake(wake_lo, wake_hi - wake_lo);
        wakes_.fetch_add(1, std::memory_order_relaxed);
        if (rc < 0 && rc != -ESRCH) {
            // A failed batch wake must not strand anyone: wake page by page.
            log::debug("batch wake failed ({}), waking pages one by one", strerror(int(-rc)));
            for (size_t j = 0; j < seen_count; ++j)
                uffd_.wake(seen[j], page_size_);
        }
    }

    // Phase 2 (Config::wake_before_fault_around): fault-around while the
    // woken threads already run. Each window page a thread touches before it
    // is installed costs it another fault (answered with EEXIST and a wake).
    // Measured: a win for one thread touching memory with a CPU to spare,
    // a loss when the touching threads keep every CPU busy
    // (docs/performance.md), so it is off by default.
    for (size_t i = 0; i < served_count; ++i) {
        served[i].region->fault_around(served[i].page, served[i].write, installer, options_.fault_around_pages);
        tree_.release_after_fault(*served[i].region);
    }
}

void FaultHandler::deliver_sigbus(uintptr_t page, int tid, memory::Region& region) noexcept
{
    sigbus_.fetch_add(1, std::memory_order_relaxed);
    log::debug("fault at {:#x} cannot be served: delivering SIGBUS", page);
    // Preferred: UFFDIO_POISON marks the page so the retried access raises
    // SIGBUS in exactly the thread that made it (and any other that tries).
    if (options_.use_poison && uffd_.poison(page, page_size_, false) == 0)
        return;
    // Without POISON: place an empty file's page over it, which the kernel
    // answers with SIGBUS the same way. The runtime replaces it when the
    // range is unmapped.
    if (os::map_sigbus_page(page, page_size_, int(region.access()), empty_memfd_) == 0)
        return;
    // Last resort (e.g. the range is sealed): signal the thread directly.
    // It is waiting in the fault, so the signal ends the wait.
    if (tid > 0 && syscall(SYS_tgkill, getpid(), tid, SIGBUS) == 0)
        return;
    log::error("fault at {:#x}: no way to deliver SIGBUS; the thread will retry the fault", page);
}

void FaultHandler::fill_stats(RuntimeStats& s) const
{
    s.fault_events = fault_events_.load();
    s.faults_deduplicated = deduplicated_.load();
    s.pages_installed = installer_counters_.pages_installed.load();
    s.wakes = wakes_.load();
    s.eexist = installer_counters_.eexist.load();
    s.eagain_retries = installer_counters_.eagain_retries.load();
    s.stale_faults = stale_.load();
    s.sigbus_delivered = sigbus_.load();
    s.batches = batches_.load();
}

} // namespace faultline::fault
