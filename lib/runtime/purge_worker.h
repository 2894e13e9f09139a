// runtime/purge_worker.h — the thread that purges and runs purge callbacks.
//
// Purging, the user's callbacks and PSI monitoring never run on a fault
// handler thread: a handler that called user code could be made to wait on a
// page it alone can serve. They run here, on two threads started with the
// first purgeable region. The purge thread ("faultline-purge") takes
//   - purge requests from API threads (Runtime::purge, the budget check after
//     set_volatile, an allocation or re-commit that needs room), each waited
//     for by its caller;
//   - the PSI trigger (POLLPRI) and injected pressure events;
//   - the budget, every budget_interval_ms while volatile memory exists.
// A request made on the purge thread itself (from a purge callback) is
// refused with EDEADLK instead of waiting for itself.
//
// The touch thread ("faultline-touch") answers touches of purged pages in
// PurgedAccess::Callback regions, posted by handler threads into a fixed
// ring (no allocation there): the user's callback decides, and its answer
// completes the parked fault. It is a thread of its own because a parked
// fault pins its region: an unmap holding the runtime's lock waits for it,
// so the thread that answers it must never wait behind a purge callback
// that is itself waiting for that lock.
#pragma once

#include "memory/purged_access_port.h"
#include "os/psi_trigger.h"
#include "runtime/purger.h"

#include <faultline/purgeable.h>
#include <faultline/result.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace faultline {

class PurgeWorker final : public memory::PurgedAccessPort {
public:
    // `psi`: open the configured pressure trigger (the feature is available).
    static Result<std::unique_ptr<PurgeWorker>> start(Purger& purger, const PurgeConfig& config, bool psi);
    ~PurgeWorker();
    PurgeWorker(const PurgeWorker&) = delete;
    PurgeWorker& operator=(const PurgeWorker&) = delete;

    // Runs the request on the worker and returns its result. EDEADLK on the
    // worker thread, ESHUTDOWN once stopped.
    Result<PurgeResult> run(const PurgeRequest& request);
    // Handler threads (memory::PurgedAccessPort).
    bool post(memory::PurgeableVMObject& object, uintptr_t page, memory::PendingToken token,
        memory::CompletionPort& completions) noexcept override;
    // As if the PSI trigger had fired (tests; and what a pressure event does).
    void inject_pressure() noexcept;

    bool on_worker_thread() const noexcept { return std::this_thread::get_id() == thread_id_.load(); }
    bool pressure_trigger_open() const noexcept { return psi_.has_value(); }
    // Stops and joins the thread; requests still queued fail with ESHUTDOWN,
    // touches still queued are answered with SIGBUS. Idempotent.
    void stop() noexcept;
    // In a fork child: the thread does not exist here.
    void abandon() noexcept;

private:
    PurgeWorker(Purger& purger, const PurgeConfig& config) : purger_(purger), config_(config) {}
    void run_loop() noexcept;
    void touch_loop() noexcept;
    void notify() noexcept;

    struct Job {
        PurgeRequest request;
        std::optional<Result<PurgeResult>> result;
    };
    struct Touch {
        memory::PurgeableVMObject* object;
        uintptr_t page;
        memory::PendingToken token;
        memory::CompletionPort* completions;
    };
    static constexpr size_t kTouches = 256;

    Purger& purger_;
    const PurgeConfig& config_;
    std::optional<os::PsiTrigger> psi_;
    int event_fd_ = -1;
    std::thread thread_;
    std::thread touch_thread_;
    std::atomic<std::thread::id> thread_id_ {};
    std::mutex lock_;
    // Held by pointer so that a fork child can leak them: glibc's
    // pthread_cond_destroy waits for the waiters it sees, and the child sees
    // the parent's threads waiting in the copy, which never leave.
    std::unique_ptr<std::condition_variable> done_ = std::make_unique<std::condition_variable>();
    std::unique_ptr<std::condition_variable> touched_ = std::make_unique<std::condition_variable>();
    std::deque<Job*> jobs_;
    Touch touches_[kTouches];
    size_t touch_head_ = 0, touch_count_ = 0;
    bool stopping_ = false;
    bool abandoned_ = false;
    std::atomic<bool> pressure_injected_ { false };
};

} // namespace faultline
