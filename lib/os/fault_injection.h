// os/fault_injection.h — makes chosen userfaultfd ioctls fail, for tests.
//
// Tests arm an operation with an errno and a count; the next `count` calls of
// that ioctl fail with it without reaching the kernel. Disarmed, the check is
// one relaxed atomic load per ioctl. Nothing in the library arms it.
#pragma once

#include <atomic>

namespace faultline::os {

enum class InjectOp : unsigned { Copy, ZeroPage, Wake, Poison, Continue, WriteProtect, Count };

class FaultInjection {
public:
    // The next `count` calls of `op` fail with `error` (a positive errno).
    static void arm(InjectOp op, int error, int count) noexcept;
    static void disarm_all() noexcept;
    // Returns the errno to inject for this call, or 0.
    static int take(InjectOp op) noexcept
    {
        auto& slot = slots_[unsigned(op)];
        if (slot.remaining.load(std::memory_order_relaxed) <= 0)
            return 0;
        return take_slow(op);
    }
    // How many injected failures were taken since arm().
    static int taken(InjectOp op) noexcept { return slots_[unsigned(op)].taken.load(); }

private:
    static int take_slow(InjectOp op) noexcept;
    struct Slot {
        std::atomic<int> remaining { 0 };
        std::atomic<int> error { 0 };
        std::atomic<int> taken { 0 };
    };
    static Slot slots_[unsigned(InjectOp::Count)];
};

} // namespace faultline::os
