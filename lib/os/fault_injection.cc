#include "os/fault_injection.h"

namespace faultline::os {

FaultInjection::Slot FaultInjection::slots_[unsigned(InjectOp::Count)];

void FaultInjection::arm(InjectOp op, int error, int count) noexcept
{
    auto& slot = slots_[unsigned(op)];
    slot.error.store(error);
    slot.taken.store(0);
    slot.remaining.store(count);
}

void FaultInjection::disarm_all() noexcept
{
    for (auto& slot : slots_) {
        slot.remaining.store(0);
        slot.taken.store(0);
    }
}

int FaultInjection::take_slow(InjectOp op) noexcept
{
    auto& slot = slots_[unsigned(op)];
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
