// uffd/fill_result.h — what one fill verb (zero, copy, continue,
// writeprotect) achieved, in the terms the layers above decide on.
//
// The kernel's errno values are folded here, once, into a status:
//   EEXIST        -> Done: someone installed the page first (another handler
//                    thread, fault-around, a fork child's shared page); the
//                    verb continues past it.
//   EAGAIN        -> retried while it makes progress; Retry once it stops
//                    (the layout is changing; the thread will refault).
//   ENOENT,EFAULT -> RegionGone: the mapping went away under us.
//   ESRCH         -> MmGone: the process is exiting.
//   anything else -> Failed (ENOMEM, an injected error): the page cannot
//                    be provided; the faulting thread gets SIGBUS.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace faultline::uffd {

// What a zero fill places.
enum class ZeroFill : uint8_t {
    // The shared zero page (UFFDIO_ZEROPAGE; a private copy of zeros where
    // that ioctl is unavailable). For read faults.
    SharedZeroPage,
    // A private zeroed page. For write faults.
    Private,
    // A private zeroed page, write-protected: the first write raises a
    // write-protect fault (dirty tracking).
    PrivateWriteProtected,
};

enum class FillStatus : uint8_t {
    Done,
    Retry,
    RegionGone,
    MmGone,
    Failed,
};

struct FillResult {
    FillStatus status = FillStatus::Done;
    int error = 0;     // the errno behind a status other than Done
    size_t pages = 0;  // pages this call placed (pages found already there are not counted)
    bool ok() const noexcept { return status == FillStatus::Done; }
};

// How fills went, across every handler thread (relaxed atomics).
struct FillCounters {
    std::atomic<uint64_t> pages_installed { 0 };
    std::atomic<uint64_t> eexist { 0 };
    std::atomic<uint64_t> eagain_retries { 0 };
};

} // namespace faultline::uffd
