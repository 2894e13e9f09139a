// bench/placement.h — which CPU a thread (and the threads it creates) runs on.
//
// On a virtual machine, waking a thread that sleeps on another vCPU costs an
// inter-processor interrupt and a halted vCPU's exit and re-entry: on the
// 2-vCPU VM of docs/performance.md that is about 35 µs per round trip, four
// times the rest of a userfaultfd fault. Whether a handler thread sits on
// the faulting thread's CPU or on another one therefore decides the result,
// and the scheduler's choice sticks to whichever CPU a thread happened to
// start on. Cases that measure the fault round trip itself pin the threads,
// so that faultline and its baseline are compared under the same placement.
#pragma once

#include <sched.h>
#include <vector>

namespace bench {

// The CPUs this process may run on, lowest first.
std::vector<int> allowed_cpus();

// Pins the calling thread to one CPU until destroyed. Threads created in the
// meantime inherit the pin (Linux copies the creator's affinity mask), which
// is how handler threads started by a library are placed without reaching
// into it.
class PinnedTo {
public:
    explicit PinnedTo(int cpu);
    ~PinnedTo();
    PinnedTo(const PinnedTo&) = delete;
    PinnedTo& operator=(const PinnedTo&) = delete;

private:
    cpu_set_t saved_;
};

} // namespace bench
