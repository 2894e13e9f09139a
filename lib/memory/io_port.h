// memory/io_port.h — where an object queues the I/O a fault needs.
//
// An object that must read a page before installing it (a file object)
// queues the read here and answers the fault Pending; the fault service
// submits the queued I/O once per batch and delivers each completion to
// its io::Operation on one of its threads, never blocking a handler on the
// I/O. Declared beside the objects so that lib/memory needs nothing from the
// fault service; the handler threads pass their io_uring (fault/ring_io.h)
// or, where io_uring is unavailable, a worker thread (io/io_worker.h).
#pragma once

#include "io/operation.h"

#include <cstddef>
#include <cstdint>

namespace faultline::memory {

class IoPort {
public:
    // Queues a read of `len` bytes at `offset` of `fd` into `buf` (memory
    // the runtime owns and never serves through userfaultfd). False when no
    // more I/O can be queued now: the caller answers its fault Retry.
    virtual bool read(int fd, void* buf, size_t len, uint64_t offset, io::Operation* op) noexcept = 0;

protected:
    ~IoPort() = default;
};

} // namespace faultline::memory
