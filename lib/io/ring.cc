#include "io/ring.h"

#include <cerrno>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>

namespace faultline::io {

Result<std::unique_ptr<Ring>> Ring::create(unsigned entries)
{
    std::unique_ptr<Ring> ring(new (std::nothrow) Ring());
    if (!ring)
        return fail(ENOMEM, "out of memory for an io_uring");
    if (int rc = io_uring_queue_init(entries, &ring->ring_, 0); rc < 0)
        return failf(-rc, "io_uring_queue_init failed: %s (io_uring disabled? see docs/kernels.md)", strerror(-rc));
    ring->initialised_ = true;
    ring->event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ring->event_fd_ < 0)
        return failf(errno, "eventfd for io_uring failed: %s", strerror(errno));
    if (int rc = io_uring_register_eventfd(&ring->ring_, ring->event_fd_); rc < 0)
        return failf(-rc, "io_uring_register_eventfd failed: %s", strerror(-rc));
    return ring;
}

Ring::~Ring()
{
    if (initialised_) {
        // Completions of operations still in flight must not land in freed
        // state: owners drain before destroying their ring.
        (void)drain();
        io_uring_queue_exit(&ring_);
    }
    if (event_fd_ >= 0)
        close(event_fd_);
}

io_uring_sqe* Ring::next_sqe() noexcept
{
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe && submit() > 0)
        sqe = io_uring_get_sqe(&ring_);
    return sqe;
}

bool Ring::read(int fd, void* buf, uint32_t len, uint64_t offset, Operation* op) noexcept
{
    io_uring_sqe* sqe = next_sqe();
    if (!sqe)
        return false;
    io_uring_prep_read(sqe, fd, buf, len, offset);
    io_uring_sqe_set_data64(sqe, uint64_t(uintptr_t(op)));
    ++queued_;
    return true;
}

bool Ring::write(int fd, const void* buf, uint32_t len, uint64_t offset, Operation* op) noexcept
{
    io_uring_sqe* sqe = next_sqe();
    if (!sqe)
        return false;
    io_uring_prep_write(sqe, fd, buf, len, offset);
    io_uring_sqe_set_data64(sqe, uint64_t(uintptr_t(op)));
    ++queued_;
    return true;
}

int Ring::submit() noexcept
{
    if (queued_ == 0)
        return 0;
    int rc;
    do
        rc = io_uring_submit(&ring_);
    while (rc == -EINTR);
    if (rc > 0) {
        in_flight_ += unsigned(rc);
        queued_ -= unsigned(rc) < queued_ ? unsigned(rc) : queued_;
    }
    return rc;
}

size_t Ring::reap() noexcept
{
    // Reset the eventfd first: a completion posted after this read makes it
    // readable again, so the owner comes back for it.
    uint64_t value;
    (void)!::read(event_fd_, &value, sizeof value);
    size_t n = 0;
    io_uring_cqe* cqe;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe) {
        auto* op = reinterpret_cast<Operation*>(uintptr_t(io_uring_cqe_get_data64(cqe)));
        int32_t res = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        --in_flight_;
        ++n;
        if (op && op->complete)
            op->complete(op, res);
    }
    return n;
}

int Ring::drain() noexcept
{
    if (int rc = submit(); rc < 0)
        return rc;
    while (in_flight_ > 0) {
        io_uring_cqe* cqe;
        int rc = io_uring_wait_cqe(&ring_, &cqe);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            return rc;
        reap();
    }
    return 0;
}

} // namespace faultline::io
