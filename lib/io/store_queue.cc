#include "io/store_queue.h"

#include "io/delayed_completion.h"
#include "os/fault_injection.h"
#include "support/runtime_thread.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstring>
#include <new>
#include <pthread.h>

namespace faultline::io {

namespace {
// Store threads detached by shutdown() and not finished yet (process-wide:
// a queue does not know its runtime, and the wait is for a thread's last
// few instructions).
std::atomic<int> g_detached { 0 };

constexpr uint32_t kInjected = os::FaultInjection::bit(os::InjectOp::StoreRead)
    | os::FaultInjection::bit(os::InjectOp::StoreReadShort) | os::FaultInjection::bit(os::InjectOp::StoreReadDelay);
} // namespace

StoreQueue::StoreQueue(std::shared_ptr<Store> store, size_t capacity)
    : store_(std::move(store))
    , capacity_(capacity)
    , ring_(new Request[capacity])
{
}

Result<std::shared_ptr<StoreQueue>> StoreQueue::create(std::shared_ptr<Store> store, unsigned threads, size_t capacity)
{
    if (!store)
        return fail(EINVAL, "the store is null");
    std::shared_ptr<StoreQueue> queue(new (std::nothrow) StoreQueue(std::move(store), capacity));
    if (!queue)
        return fail(ENOMEM, "out of memory for a store queue");
    if (!queue->start(threads)) {
        queue->shutdown();
        return fail(EAGAIN, "cannot start the store's threads");
    }
    return queue;
}

bool StoreQueue::start(unsigned threads)
{
    // Like the handler threads, store threads run no application signal
    // handler (a store is called with every signal blocked).
    AllSignalsBlocked blocked;
    bool ok = true;
    try {
        for (unsigned i = 0; i < threads; ++i)
            threads_.emplace_back([self = shared_from_this()]() mutable {
                self->run();
                // Dropping the last reference may free the queue and the
                // store: only then has a detached thread finished.
                const bool detached = self->detached_self_;
                self.reset();
                if (detached)
                    g_detached.fetch_sub(1, std::memory_order_release);
            });
    } catch (const std::exception&) {
        ok = false;
    }
    return ok;
}

StoreQueue::~StoreQueue() = default;

void StoreQueue::shutdown() noexcept
{
    // A fork child's copy: its lock may have been held by a parent's thread
    // at the fork, and its threads are not there to join.
    if (abandoned_)
        return;
    {
        std::lock_guard g(lock_);
        stopping_ = true;
    }
    ready_.notify_all();
    for (std::thread& t : threads_) {
        if (!t.joinable())
            continue;
        if (t.get_id() == std::this_thread::get_id()) {
            detached_self_ = true;
            g_detached.fetch_add(1, std::memory_order_acq_rel);
            t.detach();
        }
        else
            t.join();
    }
}

bool StoreQueue::read(void* buf, size_t len, uint64_t offset, Operation* op) noexcept
{
    {
        std::lock_guard g(lock_);
        if (count_ == capacity_ || stopping_)
            return false;
        ring_[(head_ + count_) % capacity_] = { buf, len, offset, op };
        ++count_;
    }
    ready_.notify_one();
    return true;
}

void StoreQueue::wait_for_detached() noexcept
{
    while (g_detached.load(std::memory_order_acquire) > 0)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
}

void StoreQueue::abandon() noexcept
{
    // std::thread objects are only handles: overwrite them with empty ones
    // so that nothing joins or terminates on them. (The parent's threads'
    // references keep this copy of the queue alive: it is never freed in
    // the child, whose runtime is inert.)
    for (std::thread& t : threads_)
        new (&t) std::thread();
    stopping_ = true;
    abandoned_ = true;
}

void StoreQueue::run() noexcept
{
    begin_runtime_thread("faultline-store");
    std::unique_lock g(lock_);
    for (;;) {
        ready_.wait(g, [&] { return stopping_ || count_ > 0; });
        // Queued reads are completed even when stopping: their caches wait
        // for them.
        if (count_ == 0)
            return;
        Request r = ring_[head_];
        head_ = (head_ + 1) % capacity_;
        --count_;
        g.unlock();
        int64_t n;
        if (os::FaultInjection::any_armed(kInjected)) [[unlikely]]
            n = read_injected(r);
        else
            n = store_->read(r.buf, r.len, r.offset);
        // A store that claims more than it was asked for, or a result the
        // completion cannot carry, is an error, never a page of garbage.
        if (n > int64_t(r.len) || n > INT32_MAX || n < -4095)
            n = -EIO;
        r.op->complete(r.op, int32_t(n));
        g.lock();
    }
}

int64_t StoreQueue::read_injected(Request& r) noexcept
{
    // Tests only (os/fault_injection.h): a slow completion (delivered by the
    // timer thread, so this thread goes on with the next read), a failure
    // without calling the store, or a store that fills and reports fewer
    // bytes than asked inside the store.
    const uintptr_t at = uintptr_t(r.offset);
    if (int ms = os::FaultInjection::take(os::InjectOp::StoreReadDelay, at))
        if (Operation* delayed = delay_completion(r.op, unsigned(ms)))
            r.op = delayed;
    if (int injected = os::FaultInjection::take(os::InjectOp::StoreRead, at))
        return -injected;
    int64_t n = store_->read(r.buf, r.len, r.offset);
    if (int cut = os::FaultInjection::take(os::InjectOp::StoreReadShort, at); cut && n > 0) {
        const int64_t kept = n > cut ? n - cut : 0;
        memset(static_cast<char*>(r.buf) + kept, 0, size_t(n - kept));
        n = kept;
    }
    return n;
}

} // namespace faultline::io
