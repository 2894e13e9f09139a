// io/ring.h — one io_uring (liburing), used by one thread at a time.
//
// Each fault-handler thread owns a Ring: objects queue reads through it while
// the thread serves a batch, the thread submits them once at the batch's end,
// and it reaps their completions when the ring's eventfd (polled beside the
// userfaultfd) becomes readable. API threads that write (sync) use a Ring of
// their own and wait on it. Submitting never waits for the I/O.
#pragma once

#include "io/operation.h"

#include <faultline/result.h>

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace faultline::io {

class Ring {
public:
    // `entries`: submission queue size (a power of two is used).
    static Result<std::unique_ptr<Ring>> create(unsigned entries);
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    // Readable once completions are waiting (registered with the ring).
    int event_fd() const noexcept { return event_fd_; }

    // Queue a read / write of `len` bytes at `offset`; `op` gets the result.
    // False when the submission queue is full even after submitting what
    // was queued (the caller answers its fault Retry).
    bool read(int fd, void* buf, uint32_t len, uint64_t offset, Operation* op) noexcept;
    bool write(int fd, const void* buf, uint32_t len, uint64_t offset, Operation* op) noexcept;
    // Submits everything queued; returns how many, or -errno.
    int submit() noexcept;
    // Delivers every completion that is ready; returns how many.
    size_t reap() noexcept;
    // API threads: submits, then waits until nothing is in flight,
    // delivering completions as they come. Returns 0 or -errno.
    int drain() noexcept;

    unsigned queued() const noexcept { return queued_; }
    unsigned in_flight() const noexcept { return in_flight_; }

private:
    Ring() = default;
    io_uring_sqe* next_sqe() noexcept;

    io_uring ring_ {};
    bool initialised_ = false;
    int event_fd_ = -1;
    unsigned queued_ = 0;    // prepared, not yet submitted
    unsigned in_flight_ = 0; // submitted, completion not yet delivered
};

} // namespace faultline::io
