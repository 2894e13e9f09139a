#include "fault/thread_fault_counters.h"

namespace faultline::fault {

void ThreadFaultCounters::record(int tid) noexcept
{
    if (tid <= 0)
        return;
    unsigned start = (unsigned(tid) * 2654435761u) % kCapacity;
    // Linear probing; a slot, once claimed by a tid, keeps it for the
    // runtime's life (thread ids are rarely reused within one).
    for (unsigned i = 0; i < kCapacity; ++i) {
        Slot& slot = slots_[(start + i) % kCapacity];
        int seen = slot.tid.load(std::memory_order_acquire);
        if (seen == 0 && slot.tid.compare_exchange_strong(seen, tid, std::memory_order_acq_rel))
            seen = tid;
        if (seen == tid) {
            slot.faults.fetch_add(1, std::memory_order_relaxed);
            return;
        }
    }
    overflow_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<ThreadFaultCount> ThreadFaultCounters::snapshot() const
{
    std::vector<ThreadFaultCount> out;
    for (const Slot& slot : slots_) {
        int tid = slot.tid.load(std::memory_order_acquire);
        if (tid != 0)
            out.push_back({ tid, slot.faults.load(std::memory_order_relaxed) });
    }
    return out;
}

} // namespace faultline::fault
