// io/io_worker.h — I/O without io_uring: one thread doing pread/pwrite.
//
// io_uring can be disabled (kernel.io_uring_disabled, seccomp filters, or
// FAULTLINE_DISABLE=io_uring to test this path). The fault path must still
// never block a handler thread on I/O, so the same requests go to a worker
// thread instead, which performs them one by one and delivers each result
// to its io::Operation on the worker thread. A fixed ring of requests,
// allocated when the worker starts: submitting allocates nothing.
#pragma once

#include "io/operation.h"

#include <faultline/result.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

namespace faultline::io {

class IoWorker {
public:
    static Result<std::unique_ptr<IoWorker>> create(size_t capacity);
    ~IoWorker();
    IoWorker(const IoWorker&) = delete;
    IoWorker& operator=(const IoWorker&) = delete;

    // False when `capacity` requests are already waiting.
    bool read(int fd, void* buf, size_t len, uint64_t offset, Operation* op) noexcept;
    bool write(int fd, const void* buf, size_t len, uint64_t offset, Operation* op) noexcept;
    // Blocks until every request queued so far has completed.
    void drain() noexcept;
    // In a fork child: the worker thread is the parent's; forget it without
    // joining (runtime/fork_guard.h). The object must then not be destroyed
    // either: its condition variables still count the parent's thread.
    void abandon() noexcept;

private:
    struct Request {
        bool write;
        int fd;
        void* buf;
        size_t len;
        uint64_t offset;
        Operation* op;
    };
    explicit IoWorker(size_t capacity);
    bool push(const Request& r) noexcept;
    void run() noexcept;

    size_t capacity_;
    std::unique_ptr<Request[]> ring_;
    size_t head_ = 0;
    size_t count_ = 0;
    size_t busy_ = 0;
    bool stopping_ = false;
    std::mutex lock_;
    std::condition_variable ready_;
    std::condition_variable idle_;
    std::thread thread_;
};

} // namespace faultline::io
