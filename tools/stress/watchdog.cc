// tools/stress/watchdog.cc — the watchdog thread (see watchdog.h).
#include "watchdog.h"

#include <chrono>
#include <cstdio>
#include <thread>

#include <pthread.h>
#include <unistd.h>

namespace stress {

void run_watchdog(Activity* activities, unsigned count, int64_t limit_ns, const std::atomic<bool>* finished)
{
    pthread_setname_np(pthread_self(), "stress-watchdog");
    while (!finished->load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        int64_t now = now_ns();
        for (unsigned i = 0; i < count; ++i) {
            Activity& a = activities[i];
            int64_t since = a.since.load(std::memory_order_acquire);
            if (since == 0 || now - since <= limit_ns)
                continue;
            std::fprintf(stderr,
                "stress: FAIL: WATCHDOG: %s has been in '%s' at %#lx for %.1f s (limit %.1f s); stopping the run\n",
                a.label, a.what.load(), (unsigned long)a.address.load(), double(now - since) / 1e9, double(limit_ns) / 1e9);
            std::fprintf(stderr, "stress: FAILED (watchdog)\n");
            std::fflush(stderr);
            _exit(1);
        }
    }
}

} // namespace stress
