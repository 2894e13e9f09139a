// The preloaded heap with threads, fork and exec.
#include "heap_support.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::heap_testing {
namespace {

// Eight threads allocate, fill, check and free blocks of every size class,
// handing some to each other to free: no block ever holds another's bytes,
// and every block is faultline memory.
TEST(HeapThreads, EightThreadsKeepTheirBytes)
{
    ASSERT_HEAP_ACTIVE();
    constexpr int kThreads = 8, kRounds = 4000;
    std::atomic<int> bad { 0 }, outside { 0 };
    std::vector<std::atomic<unsigned char*>> handoff(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            std::mt19937 rng(unsigned(t + 1));
            std::vector<std::pair<unsigned char*, size_t>> mine;
            for (int round = 0; round < kRounds; ++round) {
                const size_t size = rng() % 4 == 0 ? 1 + rng() % (1 << 20) : 1 + rng() % 512;
                auto* p = static_cast<unsigned char*>(std::malloc(size));
                if (!p) {
                    ++bad;
                    continue;
                }
                if (!in_heap(p, size))
                    ++outside;
                std::memset(p, (unsigned char)(t * 31 + size), size);
                mine.push_back({ p, size });
                if (mine.size() > 64 || rng() % 3 == 0) {
                    auto [q, n] = mine[rng() % mine.size()];
                    for (size_t i = 0; i < n; i += 97)
                        if (q[i] != (unsigned char)(t * 31 + n))
                            ++bad;
                    std::erase_if(mine, [q = q](auto& e) { return e.first == q; });
                    // Freed here, or by the next thread (cross-thread free).
                    if (rng() % 2)
                        std::free(q);
                    else if (unsigned char* old = handoff[(t + 1) % kThreads].exchange(q))
                        std::free(old);
                }
            }
            for (auto [p, n] : mine)
                std::free(p);
        });
    for (auto& th : threads)
        th.join();
    for (auto& h : handoff)
        std::free(h.exchange(nullptr));
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(outside.load(), 0);
}

// fork without exec: the child's heap is intact (the parent's blocks hold
// their bytes), the child keeps allocating and freeing, and nothing it does
// reaches the parent.
TEST(HeapFork, ChildKeepsAWorkingHeap)
{
    ASSERT_HEAP_ACTIVE();
    const size_t size = size_t(8) << 20;
    auto* shared = static_cast<unsigned char*>(std::malloc(size));
    ASSERT_NE(shared, nullptr);
    for (size_t i = 0; i < size; i += 4096)
        shared[i] = (unsigned char)(i >> 12);
    // An untouched block: zeros in the child too (never another's bytes).
    auto* untouched = static_cast<unsigned char*>(std::malloc(size));
    ASSERT_NE(untouched, nullptr);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        int status = 0;
        for (size_t i = 0; i < size; i += 4096)
            if (shared[i] != (unsigned char)(i >> 12))
                status |= 1;
        for (size_t i = 0; i < size; i += 4096)
            if (untouched[i] != 0)
                status |= 2;
        for (int round = 0; round < 10000; ++round) {
            auto* p = static_cast<unsigned char*>(std::malloc(1 + round % 3000));
            if (!p)
                status |= 4;
            else {
                std::memset(p, 1, 1 + round % 3000);
                std::free(p);
            }
        }
        std::memset(shared, 0xee, size); // the child's copy only
        std::free(shared);
        std::free(untouched);
        _exit(status);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "bit 1: parent bytes wrong, 2: untouched not zero, 4: malloc failed";
    for (size_t i = 0; i < size; i += 4096)
        ASSERT_EQ(shared[i], (unsigned char)(i >> 12));
    std::free(shared);
    std::free(untouched);
}

// exec: the preload follows into the new program (the environment carries
// LD_PRELOAD), which runs and exits with its own status.
TEST(HeapExec, ChildProgramRunsUnderThePreload)
{
    ASSERT_HEAP_ACTIVE();
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        execl("/bin/sh", "sh", "-c", "case \"$LD_PRELOAD\" in *libfaultline_malloc.so*) exit 3;; esac; exit 9", nullptr);
        _exit(127);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 3);
}

} // namespace
} // namespace faultline::heap_testing
