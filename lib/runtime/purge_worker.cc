#include "runtime/purge_worker.h"
#include "support/runtime_thread.h"

#include "support/log.h"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace faultline {

Result<std::unique_ptr<PurgeWorker>> PurgeWorker::start(Purger& purger, const PurgeConfig& config, bool psi)
{
    std::unique_ptr<PurgeWorker> worker(new PurgeWorker(purger, config));
    worker->event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (worker->event_fd_ < 0)
        return failf(errno, "eventfd failed: %s", strerror(errno));
    if (psi && !config.pressure_trigger.empty()) {
        if (auto trigger = os::PsiTrigger::open(config.pressure_trigger))
            worker->psi_.emplace(std::move(*trigger));
        else
            log::info("no memory-pressure trigger: {}", trigger.error().message());
    }
    try {
        worker->thread_ = std::thread([w = worker.get()] { w->run_loop(); });
        worker->touch_thread_ = std::thread([w = worker.get()] { w->touch_loop(); });
    } catch (const std::system_error& e) {
        worker->stop();
        return failf(EAGAIN, "cannot start the purge worker: %s", e.what());
    }
    return worker;
}

PurgeWorker::~PurgeWorker()
{
    if (!abandoned_)
        stop();
    if (event_fd_ >= 0)
        close(event_fd_);
}

void PurgeWorker::notify() noexcept
{
    uint64_t one = 1;
    (void)!write(event_fd_, &one, sizeof one);
}

Result<PurgeResult> PurgeWorker::run(const PurgeRequest& request)
{
    if (on_worker_thread())
        return fail(EDEADLK, "a purge requested from a purge callback would wait for itself");
    Job job { request, std::nullopt };
    std::unique_lock g(lock_);
    if (stopping_)
        return fail(ESHUTDOWN, "the purge worker has stopped");
    jobs_.push_back(&job);
    notify();
    done_->wait(g, [&] { return job.result.has_value(); });
    return std::move(*job.result);
}

bool PurgeWorker::post(memory::PurgeableVMObject& object, uintptr_t page, memory::PendingToken token,
    memory::CompletionPort& completions) noexcept
{
    {
        std::lock_guard g(lock_);
        if (stopping_ || touch_count_ == kTouches)
            return false;
        touches_[(touch_head_ + touch_count_++) % kTouches] = { &object, page, token, &completions };
    }
    touched_->notify_one();
    return true;
}

void PurgeWorker::inject_pressure() noexcept
{
    pressure_injected_.store(true);
    notify();
}

void PurgeWorker::touch_loop() noexcept
{
    begin_runtime_thread("faultline-touch");
    std::unique_lock g(lock_);
    for (;;) {
        touched_->wait(g, [&] { return stopping_ || touch_count_ > 0; });
        if (touch_count_ == 0)
            return; // stopping, nothing left to answer
        const Touch t = touches_[touch_head_];
        touch_head_ = (touch_head_ + 1) % kTouches;
        --touch_count_;
        const bool stopping = stopping_;
        g.unlock();
        // While stopping, what is still queued gets SIGBUS: the runtime is
        // going away and no callback should start now.
        int64_t result = -EFAULT;
        if (!stopping) {
            try {
                result = t.object->ask_purged_access(reinterpret_cast<void*>(t.page)) ? 0 : -EFAULT;
            } catch (...) {
                log::warn("a purged-access callback threw: SIGBUS for the page at {:#x}", t.page);
            }
        }
        t.completions->post(t.token, result);
        g.lock();
    }
}

void PurgeWorker::run_loop() noexcept
{
    thread_id_.store(std::this_thread::get_id());
    begin_runtime_thread("faultline-purge");
    for (;;) {
        pollfd fds[2] = { { event_fd_, POLLIN, 0 }, { psi_ ? psi_->fd() : -1, POLLPRI, 0 } };
        const int timeout = config_.budget ? int(config_.budget_interval_ms ? config_.budget_interval_ms : 200) : -1;
        int n = poll(fds, 2, timeout);
        if (n < 0 && errno != EINTR) {
            log::error("purge worker: poll failed: {}", strerror(errno));
            n = 0;
        }
        uint64_t ignored;
        (void)!read(event_fd_, &ignored, sizeof ignored);
        for (;;) {
            Job* job = nullptr;
            {
                std::lock_guard g(lock_);
                if (stopping_ || jobs_.empty())
                    break;
                job = jobs_.front();
                jobs_.pop_front();
            }
            Result<PurgeResult> result = fail(ENOMEM, "out of memory while purging");
            try {
                result = purger_.purge(job->request);
            } catch (const std::bad_alloc&) {
            }
            {
                std::lock_guard g(lock_);
                job->result = std::move(result);
            }
            done_->notify_all();
        }
        {
            std::lock_guard g(lock_);
            if (stopping_)
                break;
        }
        bool pressure = pressure_injected_.exchange(false);
        if (psi_ && (fds[1].revents & POLLERR)) {
            log::warn("the memory-pressure trigger on {} went away", psi_->path());
            psi_.reset();
        } else if (psi_ && (fds[1].revents & POLLPRI)) {
            pressure = true;
        }
        try {
            if (pressure) {
                purger_.pressure_events.fetch_add(1, std::memory_order_relaxed);
                PurgeRequest r;
                r.reason = PurgeReason::Pressure;
                r.resident_bytes = config_.pressure_purge_bytes ? config_.pressure_purge_bytes : kPurgeAll;
                r.reclaim_bytes = config_.pressure_purge_bytes ? 0 : kPurgeAll;
                (void)purger_.purge(r);
            }
            if (config_.budget) {
                PurgeRequest r;
                r.reason = PurgeReason::Budget;
                r.to_budget = true;
                (void)purger_.purge(r);
            }
        } catch (const std::bad_alloc&) {
            log::error("purge worker: out of memory while purging");
        }
    }
    // Stopping: fail what is still queued (the touch thread answers its own).
    std::lock_guard g(lock_);
    for (Job* job : jobs_)
        job->result = fail(ESHUTDOWN, "the purge worker has stopped");
    jobs_.clear();
    done_->notify_all();
}

void PurgeWorker::stop() noexcept
{
    {
        std::lock_guard g(lock_);
        stopping_ = true;
    }
    notify();
    touched_->notify_all();
    if (thread_.joinable())
        thread_.join();
    if (touch_thread_.joinable())
        touch_thread_.join();
}

void PurgeWorker::abandon() noexcept
{
    // A std::thread is only a handle: overwrite it with an empty one so the
    // destructor neither joins nor terminates.
    // The lock may have been held by a parent thread at fork: not taken.
    new (&thread_) std::thread();
    new (&touch_thread_) std::thread();
    (void)done_.release();
    (void)touched_.release();
    abandoned_ = true;
}

} // namespace faultline
