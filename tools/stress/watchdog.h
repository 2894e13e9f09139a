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

// The watchdog thread's body: checks `activities` every 100 ms until
// `finished` is set.
void run_watchdog(Activity* activities, unsigned count, int64_t limit_ns, const std::atomic<bool>* finished);

} // namespace stress
