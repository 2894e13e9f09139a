// fault/uffd_fault_port.h — the FaultPort of a handler thread: fills through
// its PageFiller, wakes through the userfaultfd, and delivers SIGBUS.
#pragma once

#include "fault/fault_port.h"
#include "io/delayed_completion.h"
#include "io/io_worker.h"
#include "io/ring.h"
#include "os/fault_injection.h"
#include "uffd/page_filler.h"

namespace faultline::fault {

class UffdFaultPort final : public FaultPort {
public:
    // `empty_memfd` is a memfd of size 0 for the SIGBUS fallback. `ring`
    // (the thread's own io_uring) or else `worker` carries the I/O.
    UffdFaultPort(uffd::PageFiller& filler, bool use_poison, int empty_memfd, io::Ring* ring, io::IoWorker* worker) noexcept
        : filler_(filler)
        , use_poison_(use_poison)
        , empty_memfd_(empty_memfd)
        , io_(ring, worker)
    {
    }

    size_t page_size() const noexcept override { return filler_.page_size(); }
    uffd::FillResult zero(uintptr_t start, size_t len, uffd::ZeroFill how) noexcept override { return filler_.zero(start, len, how); }
    uffd::FillResult copy(uintptr_t dst, const void* src, size_t len, bool wp) noexcept override { return filler_.copy(dst, src, len, wp); }
    uffd::FillResult map_cached(uintptr_t dst, size_t len, bool wp) noexcept override { return filler_.map_cached(dst, len, wp); }
    uffd::FillResult write_protect(uintptr_t start, size_t len, bool protect) noexcept override
    {
        return filler_.write_protect(start, len, protect);
    }
    long wake(uintptr_t start, size_t len) noexcept override { return filler_.wake(start, len); }
    bool raise_sigbus(uintptr_t page, int tid, Access access) noexcept override;
    memory::IoPort* io() noexcept override { return io_.available() ? &io_ : nullptr; }
    void submit_io() noexcept override { io_.submit(); }

private:
    // Reads queued on the thread's ring (submitted once per batch), or handed
    // to the I/O worker where io_uring is unavailable.
    class Io final : public memory::IoPort {
    public:
        Io(io::Ring* ring, io::IoWorker* worker) noexcept : ring_(ring), worker_(worker) {}
        bool available() const noexcept { return ring_ || worker_; }
        bool read(int fd, void* buf, size_t len, uint64_t offset, io::Operation* op) noexcept override
        {
            if (os::FaultInjection::any_armed(kInjected)) [[unlikely]]
                return read_injected(fd, buf, len, offset, op);
            return queue(fd, buf, len, offset, op);
        }
        void submit() noexcept
        {
            if (ring_)
                (void)ring_->submit();
        }

    private:
        static constexpr uint32_t kInjected = os::FaultInjection::bit(os::InjectOp::FileRead)
            | os::FaultInjection::bit(os::InjectOp::FileReadShort) | os::FaultInjection::bit(os::InjectOp::FileReadDelay);
        bool queue(int fd, void* buf, size_t len, uint64_t offset, io::Operation* op) noexcept
        {
            if (ring_)
                return len <= UINT32_MAX && ring_->read(fd, buf, uint32_t(len), offset, op);
            return worker_ && worker_->read(fd, buf, len, offset, op);
        }
        // Tests only (os/fault_injection.h): a slow completion, a failure,
        // a short read.
        bool read_injected(int fd, void* buf, size_t len, uint64_t offset, io::Operation* op) noexcept
        {
            const uintptr_t at = uintptr_t(offset);
            io::Operation* delayed = nullptr;
            if (int ms = os::FaultInjection::take(os::InjectOp::FileReadDelay, at))
                delayed = io::delay_completion(op, unsigned(ms));
            if (delayed)
                op = delayed;
            if (int injected = os::FaultInjection::take(os::InjectOp::FileRead, at)) {
                // Completed at once (undelayed), before the fault that asked
                // for it is even parked: the path a very fast completion
                // takes.
                op->complete(op, -injected);
                return true;
            }
            if (int cut = os::FaultInjection::take(os::InjectOp::FileReadShort, at))
                len = size_t(cut) < len ? len - size_t(cut) : 0;
            if (queue(fd, buf, len, offset, op))
                return true;
            if (delayed)
                io::cancel_delayed(delayed);
            return false;
        }

        io::Ring* ring_;
        io::IoWorker* worker_;
    };

    uffd::PageFiller& filler_;
    bool use_poison_;
    int empty_memfd_;
    Io io_;
};

} // namespace faultline::fault
