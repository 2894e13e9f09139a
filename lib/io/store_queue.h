// io/store_queue.h — a user's page store, driven without blocking a handler.
//
// A Store (faultline/store.h) is user code that may block: a handler thread
// must never call it. A fault that needs a page of a store queues the read
// here, as it would queue an io_uring read, and is answered "pending"; the
// queue's own threads call Store::read and deliver each result to its
// io::Operation, exactly like an io_uring completion (a fixed ring of
// requests: queueing allocates nothing). Writes are the caller's (sync,
// unmap and the evictor already run on threads that may block).
#pragma once

#include "io/operation.h"

#include <faultline/result.h>
#include <faultline/store.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace faultline::io {

class StoreQueue : public std::enable_shared_from_this<StoreQueue> {
public:
    static Result<std::shared_ptr<StoreQueue>> create(std::shared_ptr<Store> store, unsigned threads, size_t capacity);
    ~StoreQueue();
    StoreQueue(const StoreQueue&) = delete;
    StoreQueue& operator=(const StoreQueue&) = delete;

    Store& store() const noexcept { return *store_; }
    // False when `capacity` reads are already waiting.
    bool read(void* buf, size_t len, uint64_t offset, Operation* op) noexcept;
    // Stops the threads once the queued reads are done and joins them —
    // all but the calling thread, should it be one of them (the completion
    // that released a cache's last reference): each thread holds the queue
    // alive until it returns, so that one finishes on its own.
    void shutdown() noexcept;
    // In a fork child: the threads are the parent's; forget them without
    // joining (runtime/fork_guard.h).
    void abandon() noexcept;
    // Waits until every store thread that shutdown() could not join (it
    // was the caller) has finished — and with it, possibly, the queue and
    // the user's store. A runtime's destruction ends with this, so that a
    // store is released before the runtime is gone (C callers free their
    // context then).
    static void wait_for_detached() noexcept;

private:
    struct Request {
        void* buf;
        size_t len;
        uint64_t offset;
        Operation* op;
    };
    StoreQueue(std::shared_ptr<Store> store, size_t capacity);
    bool start(unsigned threads);
    void run() noexcept;
    int64_t read_injected(Request& r) noexcept;

    std::shared_ptr<Store> store_;
    size_t capacity_;
    std::unique_ptr<Request[]> ring_;
    size_t head_ = 0;
    size_t count_ = 0;
    bool stopping_ = false;
    bool abandoned_ = false;
    bool detached_self_ = false; // shutdown() ran on one of the threads, which was detached
    std::mutex lock_;
    std::condition_variable ready_;
    std::vector<std::thread> threads_;
};

} // namespace faultline::io
