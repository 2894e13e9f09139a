// os/fault_injection.h — makes chosen userfaultfd ioctls and I/O fail, for
// tests.
//
// Tests arm an operation with a value and a count; the next `count` calls of
// that operation take the value instead of (or on top of) reaching the
// kernel or the store. Disarmed, the check is one relaxed atomic load per
// ioctl or I/O request. Nothing in the library arms it.
#pragma once

#include <atomic>
#include <cstdint>

namespace faultline::os {

// The ioctls (Copy ... WriteProtect) fail with the errno; their address is
// the ioctl's target.
//
// The I/O operations' address is the file (or store) offset of the request:
//   FileRead       a read of a file region (io_uring or the I/O worker)
//                  completes with -errno, without reaching the kernel.
//   FileReadShort  the read goes to the kernel `value` bytes shorter (all of
//                  it when value >= its length): the completion reports
//                  fewer bytes than asked, inside the file, and the rest of
//                  the target holds whatever it held before.
//   FileReadDelay  the read's completion is delivered `value` milliseconds
//                  after the kernel's, by a timer thread
//                  (io/delayed_completion.h): no handler thread waits.
//   FileWrite      a write-back of file pages (sync, unmap, destruction, the
//                  evictor) fails with the errno, without reaching the file.
//   FileWriteShort a write of file pages (write-back, the evictor, the swap
//                  file) goes to the kernel `value` bytes shorter (at least
//                  one byte is written) and reports the shorter count, as
//                  pwrite(2) may when the file system fills up mid-request.
//   WriteDelay     a write-back (file or store: sync, unmap, the evictor) or
//                  a swap write is issued `value` milliseconds late: the
//                  writing thread sleeps first, as if the device were slow.
//   FillPause      copy mode: a read's completion pauses `value` milliseconds
//                  after it wrote the pages into the cache's memfd and
//                  before they count as cached — the window in which a
//                  thread may write such a page without a fault (a test's
//                  way to hold it open; the completion's thread sleeps).
//   StoreRead, StoreReadShort, StoreReadDelay, StoreWrite: the same for a
//                  user's Store (io/store_queue.cc; write-back): Store::read
//                  or Store::write is not called for a failure; a short read
//                  calls it, then reports `value` bytes fewer and zeroes them.
enum class InjectOp : unsigned {
    Copy,
    ZeroPage,
    Wake,
    Poison,
    Continue,
    WriteProtect,
    FileRead,
    FileWrite,
    FileReadShort,
    FileReadDelay,
    FileWriteShort,
    WriteDelay,
    FillPause,
    StoreRead,
    StoreReadShort,
    StoreReadDelay,
    StoreWrite,
    Count
};

class FaultInjection {
public:
    // The next `count` calls of `op` take `value` (a positive errno, or the
    // bytes / milliseconds above). With a range, only calls whose target
    // starts inside [lo, hi) count: a test can aim at its own region while
    // the handler threads finish stray work elsewhere (a duplicate message
    // for a page already in).
    static void arm(InjectOp op, int value, int count, uintptr_t lo = 0, uintptr_t hi = UINTPTR_MAX) noexcept;
    static void disarm_all() noexcept;
    // Returns the value to inject for this call (targeting `address`), or 0.
    static int take(InjectOp op, uintptr_t address = 0) noexcept
    {
        auto& slot = slots_[unsigned(op)];
        if (slot.remaining.load(std::memory_order_relaxed) <= 0)
            return 0;
        return take_slow(op, address);
    }
    // For a path that checks several operations: one relaxed load tells
    // whether any of `mask` (bits of InjectOp) has been armed since the last
    // disarm_all() — then each is take()n.
    static constexpr uint32_t bit(InjectOp op) noexcept { return uint32_t(1) << unsigned(op); }
    static bool any_armed(uint32_t mask) noexcept { return (armed_.load(std::memory_order_relaxed) & mask) != 0; }
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
    static_assert(unsigned(InjectOp::Count) <= 32, "any_armed() takes a 32-bit mask");
    static Slot slots_[unsigned(InjectOp::Count)];
    static std::atomic<uint32_t> armed_;
};

} // namespace faultline::os
