// fault/thread_fault_counters.h — faults per faulting thread.
//
// With UFFD_FEATURE_THREAD_ID each fault message names the thread that
// faulted. Counting per thread must not allocate on the fault path, so the
// table is a fixed open-addressing array claimed with compare-and-swap;
// threads beyond its capacity are counted together as "other".
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include <faultline/types.h>

namespace faultline::fault {

class ThreadFaultCounters {
public:
    static constexpr unsigned kCapacity = 1024;

    void record(int tid) noexcept;
    std::vector<ThreadFaultCount> snapshot() const;
    uint64_t overflow() const noexcept { return overflow_.load(std::memory_order_relaxed); }

private:
    struct Slot {
        std::atomic<int> tid { 0 };
        std::atomic<uint64_t> faults { 0 };
    };
    Slot slots_[kCapacity];
    std::atomic<uint64_t> overflow_ { 0 };
};

} // namespace faultline::fault
