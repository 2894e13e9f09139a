#include "fault/fault_handler.h"
#include "support/runtime_thread.h"

#include "fault/uffd_fault_port.h"
#include "io/ring.h"
#include "os/virtual_memory.h"
#include "support/log.h"
#include "support/try.h"
#include "uffd/page_filler.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <new>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace faultline::fault {

namespace {
thread_local bool t_is_handler = false;

inline void cpu_relax() noexcept
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}
}

FaultHandler::FaultHandler(uffd::Userfaultfd& uffd, memory::RegionTree& tree, const FaultHandlerOptions& options)
    : uffd_(uffd)
    , options_(options)
    , page_size_(os::page_size())
    , pending_(options.pending_capacity)
    , completions_(options.pending_capacity)
    , dispatcher_(tree, pending_, completions_, counters_, thread_counts_, options.dispatch)
{
}

Result<std::unique_ptr<FaultHandler>> FaultHandler::try_create(uffd::Userfaultfd& uffd, memory::RegionTree& tree, const FaultHandlerOptions& options)
{
    if (options.threads == 0 || options.threads > 64)
        return fail(EINVAL, "handler_threads must be between 1 and 64");
    if (options.dispatch.around.min_pages == 0 || options.dispatch.around.max_pages < options.dispatch.around.min_pages
        || options.dispatch.around.max_pages > 512)
        return fail(EINVAL, "fault-around must be 1 <= min <= max <= 512 pages");
    if (options.pending_capacity == 0 || options.pending_capacity > (1u << 20))
        return fail(EINVAL, "pending fault capacity must be between 1 and 1048576");
    std::unique_ptr<FaultHandler> handler(new FaultHandler(uffd, tree, options));
    handler->serving_.reset(new std::atomic<uint64_t>[options.threads] {});
    if (!handler->completions_.ready())
        return failf(errno, "eventfd for completions failed: %s", strerror(errno));
    handler->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (handler->stop_fd_ < 0)
        return failf(errno, "eventfd failed: %s", strerror(errno));
    // Created even when UFFDIO_POISON is available: poison can fail too
    // (and tests inject that), and the fallback must not need a system call
    // that allocates a file on the fault path.
    handler->empty_memfd_ = os::create_empty_memfd();
    if (handler->empty_memfd_ < 0)
        return fail(-handler->empty_memfd_, "memfd_create failed (needed for the SIGBUS fallback)");
    if (!options.use_io_uring)
        handler->io_worker_ = TRY(io::IoWorker::create(options.pending_capacity));
    // Handler threads must never run the application's signal handlers: a
    // handler that touched a region would deadlock its own fault service.
    // Room first: a thread started must land in threads_, where stop()
    // finds it to join it.
    try {
        handler->threads_.reserve(options.threads);
    } catch (const std::bad_alloc&) {
        return fail(ENOMEM, "out of memory for the handler threads");
    }
    for (unsigned i = 0; i < options.threads; ++i) {
        auto started = start_runtime_thread("handler", [h = handler.get(), i] { h->run(i); });
        if (!started) {
            handler->stop();
            return std::unexpected(started.error());
        }
        handler->threads_.push_back(std::move(*started));
    }
    // Wait until every thread has its filler, so a failure to set one up
    // is reported here rather than as a fault nobody serves.
    while (handler->ready_threads_.load() + handler->failed_threads_.load() < options.threads)
        std::this_thread::yield();
    if (handler->failed_threads_.load() > 0) {
        handler->stop();
        return fail(ENOMEM, "handler thread could not map its zero buffer");
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

void FaultHandler::abandon() noexcept
{
    stopped_.store(true);
    // The std::thread objects name threads of the parent process: in the
    // child there is nothing to join or detach. A std::thread is only a
    // handle, so overwrite each with an empty one (a joinable std::thread's
    // destructor would terminate the child).
    for (auto& t : threads_)
        new (&t) std::thread();
    threads_.clear();
    if (io_worker_) {
        // Its condition variables still count the parent's worker thread as
        // a waiter: destroying them would wait for it forever. Keep the
        // object (reachable, for leak checkers) and never destroy it here.
        io_worker_->abandon();
        [[maybe_unused]] static io::IoWorker* abandoned_workers[8];
        static std::atomic<unsigned> abandoned_count { 0 };
        unsigned i = abandoned_count.fetch_add(1);
        if (i < 8)
            abandoned_workers[i] = io_worker_.release();
        else
            (void)io_worker_.release();
    }
}

void FaultHandler::settle() const noexcept
{
    // Stopped or abandoned (a fork child: the values were copied mid-batch
    // and nothing will change them).
    if (t_is_handler || !serving_ || stopped_.load(std::memory_order_relaxed))
        return;
    // A batch is served without waiting for anything (handlers never
    // block), so this ends in microseconds; the deadline only guards
    // against a handler thread that stopped for good.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    for (unsigned i = 0; i < options_.threads; ++i) {
        const uint64_t seen = serving_[i].load(std::memory_order_acquire);
        if (!(seen & 1))
            continue;
        while (serving_[i].load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < deadline)
            std::this_thread::yield();
    }
}

void FaultHandler::run(unsigned index) noexcept
{
    begin_runtime_thread("faultline-uffd");
    t_is_handler = true;
    std::atomic<uint64_t>& serving = serving_[index];
    uffd::PageFiller filler(uffd_, page_size_, options_.dispatch.around.max_pages, options_.use_zeropage, counters_.fills);
    if (!filler.ready()) {
        failed_threads_.fetch_add(1);
        return;
    }
    // The thread's own io_uring: objects queue reads on it while this thread
    // serves a batch, and it reaps their completions. Created here, once;
    // the ring drains what is still in flight when the thread ends.
    std::unique_ptr<io::Ring> ring;
    if (options_.use_io_uring) {
        auto created = io::Ring::create(options_.ring_entries);
        if (!created) {
            log::error("handler thread: {}", created.error().message());
            failed_threads_.fetch_add(1);
            return;
        }
        ring = std::move(*created);
    }
    UffdFaultPort port(filler, options_.use_poison, empty_memfd_, ring.get(), io_worker_.get());
    ready_threads_.fetch_add(1);

    uffd_msg msgs[Dispatcher::kBatch];
    CompletionQueue::Completion done[Dispatcher::kBatch];
    pollfd fds[4] = { { uffd_.fd(), POLLIN, 0 }, { completions_.event_fd(), POLLIN, 0 }, { stop_fd_, POLLIN, 0 },
        { ring ? ring->event_fd() : -1, POLLIN, 0 } };
    const auto spin = std::chrono::microseconds(options_.spin_us);
    auto last_event = std::chrono::steady_clock::now();
    for (;;) {
        // Finished reads first: they post their faults' completions.
        if (ring && (fds[3].revents & POLLIN)) {
            fds[3].revents = 0;
            ring->reap();
            fds[1].revents = POLLIN;
        }
        // Completions next: their threads have waited longest.
        if (fds[1].revents & POLLIN) {
            fds[1].revents = 0;
            size_t n;
            while ((n = completions_.drain(done, Dispatcher::kBatch)) > 0) {
                serving.fetch_add(1, std::memory_order_seq_cst);
                dispatcher_.resume(done, n, port);
                serving.fetch_add(1, std::memory_order_release);
            }
        }
        // Drain everything pending before sleeping: under load the next
        // batch is usually already queued, and poll() costs a system call.
        long n = uffd_.read_events(msgs, Dispatcher::kBatch);
        if (n > 0) {
            ServiceCounters::bump(counters_.batches);
            serving.fetch_add(1, std::memory_order_seq_cst);
            dispatcher_.serve(msgs, size_t(n), port);
            serving.fetch_add(1, std::memory_order_release);
            if (spin.count())
                last_event = std::chrono::steady_clock::now();
            // Look at reads and completions between batches too.
            fds[1].revents = POLLIN;
            fds[3].revents = POLLIN;
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
            fds[1].revents = POLLIN;
            fds[3].revents = POLLIN;
            continue;
        }
        if (poll(fds, ring ? 4 : 3, -1) < 0 && errno != EINTR) {
            log::error("poll on userfaultfd failed: {}; handler thread stops", strerror(errno));
            return;
        }
        if (fds[2].revents & POLLIN)
            return;
        if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL))
            return;
    }
}

} // namespace faultline::fault
