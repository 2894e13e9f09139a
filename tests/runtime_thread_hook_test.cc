// set_runtime_thread_hook: every thread the runtime starts calls the hook
// before anything else (the preloaded heap relies on it to keep the
// runtime's threads out of the memory it serves).
#include "test_support.h"

#include <gtest/gtest.h>

#include <dirent.h>
#include <fstream>
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

std::string thread_name(int tid)
{
    std::ifstream comm("/proc/self/task/" + std::to_string(tid) + "/comm");
    std::string name;
    std::getline(comm, name);
    return name;
}

// Threads of this process named faultline-*, by tid.
std::set<int> runtime_threads()
{
    std::set<int> tids;
    std::ifstream self("/proc/self/comm");
    std::string program;
    std::getline(self, program);
    DIR* d = opendir("/proc/self/task");
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
        std::string name;
        std::getline(comm, name);
        // Threads the test program starts carry its own name (this binary
        // is faultline-tests), the runtime's a faultline-* of their own.
        if (name.rfind("faultline-", 0) == 0 && name != program)
            tids.insert(atoi(e->d_name));
    }
    closedir(d);
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
    set_runtime_thread_hook(record_thread);
    {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .handler_threads = 2 });
        // The purge worker and its touch thread start with the first
        // purgeable region.
        auto p = rt->allocate_purgeable(4 * kPage);
        ASSERT_TRUE(p) << p.error().message();
        // Threads name themselves once running: wait for all four.
        std::set<int> named = runtime_threads();
        for (int i = 0; i < 200 && named.size() < 4; ++i) {
            usleep(10000);
            named = runtime_threads();
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
