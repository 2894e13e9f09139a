// The runtime's own threads run none of the program's signal handlers: a
// handler that touched memory the runtime serves, run on the thread that
// serves it, would wait for itself (support/runtime_thread.h).
#include "support/threads.h"
#include "test_support.h"

#include <faultline/runtime.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <fstream>
#include <chrono>
#include <set>
#include <thread>
#include <string>

namespace faultline::testing {
namespace {

// The SigBlk mask of thread `tid` (bit n-1 for signal n).
uint64_t blocked_signals(int tid)
{
    std::ifstream status("/proc/self/task/" + std::to_string(tid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("SigBlk:", 0) == 0)
            return std::stoull(line.substr(7), nullptr, 16);
    return 0;
}

bool blocks(uint64_t mask, int sig) { return (mask >> (sig - 1)) & 1; }

TEST(RuntimeThreads, RunNoSignalHandlerOfTheProgram)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    // A freeze starts the reaper (when the kernel moves page tables).
    auto r = rt->map_anonymous({ .size = 64 * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    static_cast<char*>(*r)[0] = 1;
    ASSERT_TRUE(rt->clone(*r));
    // A new thread names itself when it starts running: until then it
    // carries the test program's name. Looked at until the reaper's name
    // shows (a few milliseconds), or for 5 s at most.
    const bool want_reaper = rt->has_feature("dontunmap");
    std::set<std::string> seen;
    for (int attempt = 0; attempt < 5000; ++attempt) {
        seen.clear();
        for (const auto& [tid, name] : process_threads()) {
            // The purge worker's threads run the program's callbacks: their
            // faults must reach the program's handlers (docs/purgeable.md).
            // (The test program's own threads are named after it.)
            if (name.rfind("faultline-", 0) != 0 || name == "faultline-tests" || name == "faultline-purge" || name == "faultline-touch")
                continue;
            seen.insert(name);
            const uint64_t mask = blocked_signals(tid);
            for (int sig : { SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD, SIGPIPE, SIGSEGV, SIGBUS })
                EXPECT_TRUE(blocks(mask, sig)) << name << " (tid " << tid << ") does not block signal " << sig;
        }
        if (!want_reaper || seen.count("faultline-reap"))
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(seen.count("faultline-uffd")) << "no handler thread found";
    if (want_reaper)
        EXPECT_TRUE(seen.count("faultline-reap")) << "no reaper thread after a freeze";
}

} // namespace
} // namespace faultline::testing
