// set_runtime_thread_hook: every thread the runtime starts calls the hook
// before anything else (the preloaded heap relies on it to keep the
// runtime's threads out of the memory it serves).
#include "support/threads.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <string>
#include <sys/syscall.h>
#include <unistd.h>

using namespace faultline;
using namespace faultline::testing;

namespace {

std::mutex g_lock;
std::set<int>* g_called = nullptr;

void record_thread()
{
    std::lock_guard guard(g_lock);
    if (g_called)
        g_called->insert(int(syscall(SYS_gettid)));
}

// Threads of this process named faultline-*, by tid. Threads the test
// program starts carry its own name (this binary is faultline-tests), the
// runtime's a faultline-* of their own.
std::set<int> runtime_threads()
{
    const std::string program = thread_name(getpid());
    std::set<int> tids;
    for (const auto& [tid, name] : process_threads())
        if (name.rfind("faultline-", 0) == 0 && name != program)
            tids.insert(tid);
    return tids;
}

} // namespace

TEST(RuntimeThreadHook, EveryRuntimeThreadCallsItFirst)
{
    std::set<int> called;
    {
        std::lock_guard guard(g_lock);
        g_called = &called;
    }
    // Threads started before the hook was set cannot have called it: the
    // process-wide ones earlier tests may have started (the I/O fault
    // injection's delay timer) are left out.
    const std::set<int> before = runtime_threads();
    set_runtime_thread_hook(record_thread);
    {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .handler_threads = 2 });
        // The purge worker and its touch thread start with the first
        // purgeable region.
        auto p = rt->allocate_purgeable(4 * kPage);
        ASSERT_TRUE(p) << p.error().message();
        // Threads name themselves once running: wait for all four.
        auto started = [&] {
            std::set<int> now;
            for (int tid : runtime_threads())
                if (!before.count(tid))
                    now.insert(tid);
            return now;
        };
        std::set<int> named = started();
        for (int i = 0; i < 200 && named.size() < 4; ++i) {
            usleep(10000);
            named = started();
        }
        EXPECT_GE(named.size(), 4u) << "two handlers, the purge worker and the touch thread";
        std::lock_guard guard(g_lock);
        for (int tid : named)
            EXPECT_TRUE(called.count(tid)) << "thread " << tid << " (" << thread_name(tid) << ") did not call the hook";
    }
    set_runtime_thread_hook(nullptr);
    std::lock_guard guard(g_lock);
    g_called = nullptr;
}
