#include "io/io_worker.h"
#include "support/runtime_thread.h"
#include "support/try.h"

#include <cerrno>
#include <csignal>
#include <new>
#include <pthread.h>
#include <unistd.h>

namespace faultline::io {

namespace {
// pread/pwrite until done, EOF or an error: the result io_uring would give
// (bytes, or -errno if nothing was transferred).
int32_t transfer(bool write, int fd, void* buf, size_t len, uint64_t offset) noexcept
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write ? pwrite(fd, static_cast<const char*>(buf) + done, len - done, off_t(offset + done))
                          : pread(fd, static_cast<char*>(buf) + done, len - done, off_t(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return done ? int32_t(done) : -errno;
        if (n == 0)
            break;
        done += size_t(n);
    }
    return int32_t(done);
}
}

IoWorker::IoWorker(size_t capacity)
    : capacity_(capacity)
    , ring_(new Request[capacity])
{
}

Result<std::unique_ptr<IoWorker>> IoWorker::create(size_t capacity)
{
    std::unique_ptr<IoWorker> worker(new IoWorker(capacity));
    worker->thread_ = TRY(start_runtime_thread("I/O worker", [w = worker.get()] { w->run(); }));
    return worker;
}

IoWorker::~IoWorker()
{
    {
        std::lock_guard g(lock_);
        stopping_ = true;
    }
    ready_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

bool IoWorker::push(const Request& r) noexcept
{
    {
        std::lock_guard g(lock_);
        if (count_ == capacity_ || stopping_)
            return false;
        ring_[(head_ + count_) % capacity_] = r;
        ++count_;
    }
    ready_.notify_one();
    return true;
}

bool IoWorker::read(int fd, void* buf, size_t len, uint64_t offset, Operation* op) noexcept
{
    return push({ false, fd, buf, len, offset, op });
}

bool IoWorker::write(int fd, const void* buf, size_t len, uint64_t offset, Operation* op) noexcept
{
    return push({ true, fd, const_cast<void*>(buf), len, offset, op });
}

void IoWorker::abandon() noexcept
{
    // A std::thread is only a handle: overwrite it with an empty one so the
    // destructor neither joins nor terminates.
    new (&thread_) std::thread();
    stopping_ = true;
}

void IoWorker::drain() noexcept
{
    std::unique_lock g(lock_);
    idle_.wait(g, [&] { return count_ == 0 && busy_ == 0; });
}

void IoWorker::run() noexcept
{
    begin_runtime_thread("faultline-io");
    std::unique_lock g(lock_);
    for (;;) {
        ready_.wait(g, [&] { return stopping_ || count_ > 0; });
        // Queued requests are completed even when stopping: their owners
        // wait for them.
        if (count_ == 0)
            return;
        Request r = ring_[head_];
        head_ = (head_ + 1) % capacity_;
        --count_;
        ++busy_;
        g.unlock();
        int32_t res = transfer(r.write, r.fd, r.buf, r.len, r.offset);
        if (r.op && r.op->complete)
            r.op->complete(r.op, res);
        g.lock();
        --busy_;
        if (count_ == 0 && busy_ == 0)
            idle_.notify_all();
    }
}

} // namespace faultline::io
