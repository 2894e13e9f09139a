#include "os/fault_injection.h"

namespace faultline::os {

FaultInjection::Slot FaultInjection::slots_[unsigned(InjectOp::Count)];
std::atomic<uint32_t> FaultInjection::armed_ { 0 };

void FaultInjection::arm(InjectOp op, int value, int count, uintptr_t lo, uintptr_t hi) noexcept
{
    auto& slot = slots_[unsigned(op)];
    slot.lo.store(lo);
    slot.hi.store(hi);
    slot.error.store(value);
    slot.taken.store(0);
    // The bit first: a path that sees it takes the slot's count, which is
    // set last.
    armed_.fetch_or(bit(op));
    slot.remaining.store(count);
}

void FaultInjection::disarm_all() noexcept
{
    armed_.store(0);
    for (auto& slot : slots_) {
        slot.remaining.store(0);
        slot.taken.store(0);
        slot.lo.store(0);
        slot.hi.store(UINTPTR_MAX);
    }
}

int FaultInjection::take_slow(InjectOp op, uintptr_t address) noexcept
{
    auto& slot = slots_[unsigned(op)];
    if (address < slot.lo.load() || address >= slot.hi.load())
        return 0;
    int left = slot.remaining.load();
    // Several handler threads may race for the last injection; exactly
    // `count` calls fail.
    while (left > 0) {
        if (slot.remaining.compare_exchange_weak(left, left - 1)) {
            slot.taken.fetch_add(1);
            return slot.error.load();
        }
    }
    return 0;
}

} // namespace faultline::os
