// tools/stress/watchdog.cc — the watchdog thread (see watchdog.h).
#include "watchdog.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <pthread.h>
#include <unistd.h>

namespace stress {

namespace {

std::atomic<DescribeAddress> g_describe { nullptr };

void report(const Activity& a, int64_t now, const char* prefix)
{
    char where[256] = "";
    if (DescribeAddress d = g_describe.load(); d && a.address.load())
        d(a.address.load(), where, sizeof where);
    std::fprintf(stderr, "%s%s has been in '%s' at %#lx%s%s for %.1f s\n", prefix, a.label, a.what.load(),
        (unsigned long)a.address.load(), where[0] ? " " : "", where, double(now - a.since.load()) / 1e9);
}

} // namespace

void set_address_describer(DescribeAddress describe) { g_describe.store(describe); }

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
            report(a, now, "stress: WATCHDOG: ");
            for (unsigned j = 0; j < count; ++j)
                if (j != i && activities[j].since.load(std::memory_order_acquire))
                    report(activities[j], now, "stress: WATCHDOG:   meanwhile ");
            std::fprintf(stderr, "stress: FAILED (watchdog)\n");
            std::fflush(stderr);
            // A hang is a library bug to diagnose: with FAULTLINE_STRESS_GDB
            // set (and gdb installed), every thread's stack goes to stderr
            // while the threads are still where they hung.
            if (std::getenv("FAULTLINE_STRESS_GDB")) {
                char command[128];
                std::snprintf(command, sizeof command, "gdb -p %d -batch -ex 'thread apply all bt' 1>&2", int(getpid()));
                if (std::system(command) != 0)
                    std::fprintf(stderr, "stress: WATCHDOG: gdb could not print the threads' stacks\n");
            }
            _exit(1);
        }
    }
}

} // namespace stress
