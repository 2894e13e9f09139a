// os/fault_injection.h — makes chosen userfaultfd ioctls fail, for tests.
//
// Tests arm an operation with an errno and a count; the next `count` calls of
// that ioctl fail with it without reaching the kernel. Disarmed, the check is
// one relaxed atomic load per ioctl. Nothing in the library arms it.
#pragma once

#include <atomic>
#include <cstdint>

namespace faultline::os {

// FileRead / FileWrite fail the file I/O the runtime issues (reads of file
// regions, write-back) with the errno, as a completion, without reaching
// the kernel; their address is the file offset.
enum class InjectOp : unsigned { Copy, ZeroPage, Wake, Poison, Continue, WriteProtect, FileRead, FileWrite, Count };

class FaultInjection {
public:
    // The next `count` calls of `op` fail with `error` (a positive errno).
    // With a range, only calls whose target starts inside [lo, hi) count:
    // a test can aim at its own region while the handler threads finish
    // stray work elsewhere (a duplicate message for a page already in).
    static void arm(InjectOp op, int error, int count, uintptr_t lo = 0, uintptr_t hi = UINTPTR_MAX) noexcept;
    static void disarm_all() noexcept;
    // Returns the errno to inject for this call (targeting `address`), or 0.
    static int take(InjectOp op, uintptr_t address = 0) noexcept
    {
        auto& slot = slots_[unsigned(op)];
        if (slot.remaining.load(std::memory_order_relaxed) <= 0)
            return 0;
        return take_slow(op, address);
    }
    // How many injected failures were taken since arm().
    static int taken(InjectOp op) noexcept { return slots_[unsigned(op)].taken.load(); }

private:
    static int take_slow(InjectOp op, uintptr_t address) noexcept;
    struct Slot {
        std::atomic<uintptr_t> lo { 0 };
        std::atomic<uintptr_t> hi { UINTPTR_MAX };
        std::atomic<int> remaining { 0 };
        std::atomic<int> error { 0 };
        std::atomic<int> taken { 0 };
    };
    static Slot slots_[unsigned(InjectOp::Count)];
};

} // namespace faultline::os
