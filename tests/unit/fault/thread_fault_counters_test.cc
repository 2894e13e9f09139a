// ThreadFaultCounters: per-tid counts in a fixed open-addressing table,
// concurrent claims of slots, the overflow bucket, invalid tids.
#include "fault/thread_fault_counters.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>
#include <memory>
#include <thread>
#include <vector>

using faultline::ThreadFaultCount;
using faultline::fault::ThreadFaultCounters;

namespace {

constexpr unsigned kCapacity = ThreadFaultCounters::kCapacity;

std::map<int, uint64_t> as_map(const ThreadFaultCounters& c)
{
    std::map<int, uint64_t> out;
    for (const ThreadFaultCount& t : c.snapshot()) {
        EXPECT_EQ(out.count(t.tid), 0u) << "tid " << t.tid << " listed twice";
        out[t.tid] += t.faults;
    }
    return out;
}

uint64_t total(const ThreadFaultCounters& c)
{
    uint64_t sum = 0;
    for (const ThreadFaultCount& t : c.snapshot())
        sum += t.faults;
    return sum;
}

// Starts all threads at once.
template <typename Fn>
void run_threads(int n, Fn fn)
{
    std::atomic<bool> go { false };
    std::vector<std::thread> threads;
    for (int t = 0; t < n; ++t)
        threads.emplace_back([&, t] {
            while (!go.load(std::memory_order_acquire))
                std::this_thread::yield();
            fn(t);
        });
    go.store(true, std::memory_order_release);
    for (auto& th : threads)
        th.join();
}

} // namespace

TEST(ThreadFaultCounters, StartsEmpty)
{
    auto c = std::make_unique<ThreadFaultCounters>();
    EXPECT_TRUE(c->snapshot().empty());
    EXPECT_EQ(c->overflow(), 0u);
}

TEST(ThreadFaultCounters, CountsPerThread)
{
    auto c = std::make_unique<ThreadFaultCounters>();
    for (int i = 0; i < 5; ++i)
        c->record(100);
    c->record(200);
    c->record(100);
    c->record(300);
    c->record(300);
    EXPECT_EQ(as_map(*c), (std::map<int, uint64_t> { { 100, 6 }, { 200, 1 }, { 300, 2 } }));
    EXPECT_EQ(c->snapshot().size(), 3u);
    EXPECT_EQ(c->overflow(), 0u);
}

TEST(ThreadFaultCounters, IgnoresInvalidTids)
{
    auto c = std::make_unique<ThreadFaultCounters>();
    c->record(0);
    c->record(-1);
    c->record(std::numeric_limits<int>::min());
    EXPECT_TRUE(c->snapshot().empty());
    EXPECT_EQ(c->overflow(), 0u);
    c->record(1);
    c->record(std::numeric_limits<int>::max());
    EXPECT_EQ(as_map(*c), (std::map<int, uint64_t> { { 1, 1 }, { std::numeric_limits<int>::max(), 1 } }));
}

TEST(ThreadFaultCounters, CollidingTidsGetTheirOwnSlots)
{
    auto c = std::make_unique<ThreadFaultCounters>();
    // tid and tid + k * kCapacity hash to the same start slot.
    std::map<int, uint64_t> want;
    for (int k = 0; k < 10; ++k) {
        int tid = 77 + k * int(kCapacity);
        for (int i = 0; i <= k; ++i)
            c->record(tid);
        want[tid] = k + 1;
    }
    EXPECT_EQ(as_map(*c), want);
    EXPECT_EQ(c->overflow(), 0u);
}

TEST(ThreadFaultCounters, ProbingWrapsAroundTheTable)
{
    auto c = std::make_unique<ThreadFaultCounters>();
    // Fill the whole table, then every tid must still find its slot.
    std::map<int, uint64_t> want;
    for (unsigned i = 0; i < kCapacity; ++i) {
        int tid = 5000 + int(i);
        c->record(tid);
        want[tid] = 1;
    }
    for (unsigned i = 0; i < kCapacity; i += 7) {
        c->record(5000 + int(i));
        ++want[5000 + int(i)];
    }
    EXPECT_EQ(as_map(*c), want);
    EXPECT_EQ(c->overflow(), 0u);
}

TEST(ThreadFaultCounters, MoreTidsThanCapacityOverflow)
{
    auto c = std::make_unique<ThreadFaultCounters>();
    for (unsigned i = 1; i <= kCapacity; ++i)
        c->record(int(i));
    EXPECT_EQ(c->snapshot().size(), size_t(kCapacity));
    EXPECT_EQ(c->overflow(), 0u);
    c->record(int(kCapacity) + 1);
    c->record(int(kCapacity) + 1);
    c->record(99999);
    EXPECT_EQ(c->overflow(), 3u);
    EXPECT_EQ(c->snapshot().size(), size_t(kCapacity));
    EXPECT_EQ(total(*c), uint64_t(kCapacity));
    // Known tids still count in their slots.
    c->record(5);
    EXPECT_EQ(as_map(*c)[5], 2u);
    EXPECT_EQ(c->overflow(), 3u);
}

TEST(ThreadFaultCounters, ConcurrentRecordsAreAllCounted)
{
    auto c = std::make_unique<ThreadFaultCounters>();
    constexpr int kThreads = 8;
    constexpr int kTidsPerThread = 40;
    constexpr int kRounds = 500;
    constexpr int kShared = 4242;
    run_threads(kThreads, [&](int t) {
        for (int round = 0; round < kRounds; ++round) {
            for (int i = 0; i < kTidsPerThread; ++i)
                c->record(1 + t * kTidsPerThread + i); // this thread's own tids
            c->record(kShared);                        // one tid all threads share
            c->record(kShared + int(kCapacity) * (1 + round % 4)); // colliding, shared
        }
    });
    auto m = as_map(*c);
    EXPECT_EQ(m.size(), size_t(kThreads * kTidsPerThread + 1 + 4));
    for (int tid = 1; tid <= kThreads * kTidsPerThread; ++tid)
        EXPECT_EQ(m[tid], uint64_t(kRounds)) << tid;
    EXPECT_EQ(m[kShared], uint64_t(kThreads * kRounds));
    for (int k = 1; k <= 4; ++k)
        EXPECT_EQ(m[kShared + int(kCapacity) * k], uint64_t(kThreads * kRounds / 4)) << k;
    EXPECT_EQ(total(*c), uint64_t(kThreads) * kRounds * (kTidsPerThread + 2));
    EXPECT_EQ(c->overflow(), 0u);
}

TEST(ThreadFaultCounters, ConcurrentClaimsOfTheSameNewTid)
{
    // All threads walk the same fresh tids in the same order, so they keep
    // racing to claim the same empty slots (for the same tid, and through
    // collisions for different tids). Each tid must end up in exactly one
    // slot with every record counted.
    constexpr int kThreads = 4;
    constexpr int kTids = 1000;
    for (int attempt = 0; attempt < 20; ++attempt) {
        auto c = std::make_unique<ThreadFaultCounters>();
        run_threads(kThreads, [&](int) {
            for (int i = 0; i < kTids; ++i)
                c->record(1 + i * 3); // spread over the table, wrapping around it
        });
        auto snap = c->snapshot();
        std::map<int, uint64_t> m;
        bool ok = snap.size() == size_t(kTids);
        for (const ThreadFaultCount& t : snap) {
            ok &= m.count(t.tid) == 0 && t.faults == uint64_t(kThreads);
            m[t.tid] += t.faults;
        }
        ASSERT_TRUE(ok) << "attempt " << attempt << ": " << snap.size() << " slots for " << kTids << " tids";
        ASSERT_EQ(total(*c), uint64_t(kThreads) * kTids);
        ASSERT_EQ(c->overflow(), 0u);
    }
}

TEST(ThreadFaultCounters, ConcurrentClaimsOfCollidingTids)
{
    // In each round the threads meet at a spinning barrier, then thread t
    // records 1 + round + t * kCapacity: all of them want the same empty
    // slot, for different tids, at the same moment. A lost claim shows as a
    // missing tid or a wrong count.
    const int threads = int(std::clamp(std::thread::hardware_concurrency(), 2u, 4u));
    const int rounds = int(kCapacity) / threads;
    for (int attempt = 0; attempt < 10; ++attempt) {
        auto c = std::make_unique<ThreadFaultCounters>();
        std::atomic<int> arrived { 0 };
        run_threads(threads, [&](int t) {
            for (int round = 0; round < rounds; ++round) {
                arrived.fetch_add(1);
                // Spin (to leave together), but yield now and then so a
                // loaded machine that descheduled a peer does not stall.
                for (int spins = 1; arrived.load() < (round + 1) * threads; ++spins)
                    if (spins % 1024 == 0)
                        std::this_thread::yield();
                c->record(1 + round + t * int(kCapacity));
                c->record(1 + round + t * int(kCapacity));
            }
        });
        auto snap = c->snapshot();
        std::map<int, uint64_t> m;
        bool ok = snap.size() == size_t(threads * rounds);
        for (const ThreadFaultCount& t : snap) {
            ok &= m.count(t.tid) == 0 && t.faults == 2;
            m[t.tid] += t.faults;
        }
        ASSERT_TRUE(ok) << "attempt " << attempt << ": " << snap.size() << " slots for " << threads * rounds << " tids";
        ASSERT_EQ(total(*c), uint64_t(2 * threads * rounds));
        ASSERT_EQ(c->overflow(), 0u);
    }
}

TEST(ThreadFaultCounters, ConcurrentOverflowIsCounted)
{
    auto c = std::make_unique<ThreadFaultCounters>();
    constexpr int kThreads = 8;
    constexpr int kPerThread = 400; // 3200 distinct tids for 1024 slots
    run_threads(kThreads, [&](int t) {
        for (int i = 0; i < kPerThread; ++i)
            c->record(1 + t * kPerThread + i);
    });
    auto snap = c->snapshot();
    EXPECT_EQ(snap.size(), size_t(kCapacity));
    EXPECT_EQ(total(*c), uint64_t(kCapacity));
    EXPECT_EQ(c->overflow(), uint64_t(kThreads * kPerThread) - kCapacity);
    for (const ThreadFaultCount& t : snap) {
        EXPECT_GE(t.tid, 1);
        EXPECT_LE(t.tid, kThreads * kPerThread);
        EXPECT_EQ(t.faults, 1u);
    }
}
