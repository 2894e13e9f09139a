// tools/stress/watchdog.h — the watchdog that fails the run on a hang.
//
// Every thread publishes what it is doing before an access or API call that
// could block and clears it afterwards; the watchdog thread fails the run
// when one has been in progress for longer than the limit. A hung fault is
// exactly the bug this catches, so it prints what it knows and _exit()s
// rather than trying to unwind threads that may never come back.
#pragma once

#include "util.h"

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace stress {

struct alignas(64) Activity {
    std::atomic<int64_t> since { 0 }; // steady-clock ns when it began; 0 = idle
    std::atomic<uintptr_t> address { 0 };
    std::atomic<const char*> what { "" }; // a string literal: the watchdog may print it any time later
    char label[32] = {};

    void begin(const char* w, uintptr_t a)
    {
        what.store(w, std::memory_order_relaxed);
        address.store(a, std::memory_order_relaxed);
        since.store(now_ns(), std::memory_order_release);
    }
    void end() { since.store(0, std::memory_order_release); }
};

// What the model knows of an address (the slot holding it), for the
// watchdog's report: set by main.cc for the phase in progress, cleared
// between phases. Must not block: the thread that hung may hold any lock.
using DescribeAddress = void (*)(uintptr_t address, char* out, size_t len);
void set_address_describer(DescribeAddress describe);

// The watchdog thread's body: checks `activities` every 100 ms until
// `finished` is set. When one hangs it also prints every other activity in
// progress (a mutator in a grace period, say, names what the hung access
// waits behind).
void run_watchdog(Activity* activities, unsigned count, int64_t limit_ns, const std::atomic<bool>* finished);

} // namespace stress
