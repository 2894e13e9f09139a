// FaultInjection: arming, exactly `count` injected failures (also when many
// threads race for them), taken(), disarm_all().
#include "os/fault_injection.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cerrno>
#include <thread>
#include <vector>

using faultline::os::FaultInjection;
using faultline::os::InjectOp;

namespace {

constexpr InjectOp kOps[] = { InjectOp::Copy, InjectOp::ZeroPage, InjectOp::Wake, InjectOp::Poison };

// The injection state is global: start and end every test disarmed.
class FaultInjectionTest : public ::testing::Test {
protected:
    void SetUp() override { FaultInjection::disarm_all(); }
    void TearDown() override { FaultInjection::disarm_all(); }
};

} // namespace

TEST_F(FaultInjectionTest, DisarmedTakesNothing)
{
    for (InjectOp op : kOps) {
        for (int i = 0; i < 10; ++i)
            EXPECT_EQ(FaultInjection::take(op), 0);
        EXPECT_EQ(FaultInjection::taken(op), 0);
    }
}

TEST_F(FaultInjectionTest, FailsExactlyCountTimes)
{
    FaultInjection::arm(InjectOp::Copy, EIO, 3);
    EXPECT_EQ(FaultInjection::take(InjectOp::Copy), EIO);
    EXPECT_EQ(FaultInjection::taken(InjectOp::Copy), 1);
    EXPECT_EQ(FaultInjection::take(InjectOp::Copy), EIO);
    EXPECT_EQ(FaultInjection::take(InjectOp::Copy), EIO);
    EXPECT_EQ(FaultInjection::taken(InjectOp::Copy), 3);
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(FaultInjection::take(InjectOp::Copy), 0);
    EXPECT_EQ(FaultInjection::taken(InjectOp::Copy), 3);
}

TEST_F(FaultInjectionTest, OpsAreIndependent)
{
    FaultInjection::arm(InjectOp::ZeroPage, ENOMEM, 1);
    FaultInjection::arm(InjectOp::Poison, EAGAIN, 2);
    EXPECT_EQ(FaultInjection::take(InjectOp::Copy), 0);
    EXPECT_EQ(FaultInjection::take(InjectOp::Wake), 0);
    EXPECT_EQ(FaultInjection::take(InjectOp::Poison), EAGAIN);
    EXPECT_EQ(FaultInjection::take(InjectOp::ZeroPage), ENOMEM);
    EXPECT_EQ(FaultInjection::take(InjectOp::ZeroPage), 0);
    EXPECT_EQ(FaultInjection::take(InjectOp::Poison), EAGAIN);
    EXPECT_EQ(FaultInjection::take(InjectOp::Poison), 0);
    EXPECT_EQ(FaultInjection::taken(InjectOp::Copy), 0);
    EXPECT_EQ(FaultInjection::taken(InjectOp::Wake), 0);
    EXPECT_EQ(FaultInjection::taken(InjectOp::ZeroPage), 1);
    EXPECT_EQ(FaultInjection::taken(InjectOp::Poison), 2);
}

TEST_F(FaultInjectionTest, ZeroOrNegativeCountInjectsNothing)
{
    FaultInjection::arm(InjectOp::Wake, EIO, 0);
    EXPECT_EQ(FaultInjection::take(InjectOp::Wake), 0);
    FaultInjection::arm(InjectOp::Wake, EIO, -5);
    EXPECT_EQ(FaultInjection::take(InjectOp::Wake), 0);
    EXPECT_EQ(FaultInjection::taken(InjectOp::Wake), 0);
}

TEST_F(FaultInjectionTest, RearmReplacesErrorCountAndTaken)
{
    FaultInjection::arm(InjectOp::Copy, EIO, 5);
    EXPECT_EQ(FaultInjection::take(InjectOp::Copy), EIO);
    EXPECT_EQ(FaultInjection::take(InjectOp::Copy), EIO);
    FaultInjection::arm(InjectOp::Copy, ENOSPC, 1);
    EXPECT_EQ(FaultInjection::taken(InjectOp::Copy), 0);
    EXPECT_EQ(FaultInjection::take(InjectOp::Copy), ENOSPC);
    EXPECT_EQ(FaultInjection::take(InjectOp::Copy), 0);
    EXPECT_EQ(FaultInjection::taken(InjectOp::Copy), 1);
}

TEST_F(FaultInjectionTest, DisarmAllStopsEverything)
{
    for (InjectOp op : kOps)
        FaultInjection::arm(op, EFAULT, 100);
    EXPECT_EQ(FaultInjection::take(InjectOp::Copy), EFAULT);
    FaultInjection::disarm_all();
    for (InjectOp op : kOps) {
        EXPECT_EQ(FaultInjection::take(op), 0);
        EXPECT_EQ(FaultInjection::taken(op), 0);
    }
}

TEST_F(FaultInjectionTest, RacingThreadsTakeExactlyCount)
{
    // Injections stay available for most of the run, so the threads keep
    // meeting in the slow path.
    constexpr int kThreads = 4;
    constexpr int kCalls = 200000;
    constexpr int kCount = 600000;
    FaultInjection::arm(InjectOp::Wake, EAGAIN, kCount);
    std::atomic<bool> go { false };
    std::atomic<int> failures { 0 }, wrong { 0 };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&] {
            while (!go.load(std::memory_order_acquire))
                std::this_thread::yield();
            int mine = 0;
            for (int i = 0; i < kCalls; ++i) {
                int e = FaultInjection::take(InjectOp::Wake);
                if (e != 0)
                    ++mine;
                if (e != 0 && e != EAGAIN)
                    wrong.fetch_add(1);
            }
            failures.fetch_add(mine);
        });
    go.store(true, std::memory_order_release);
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(failures.load(), kCount);
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(FaultInjection::taken(InjectOp::Wake), kCount);
    EXPECT_EQ(FaultInjection::take(InjectOp::Wake), 0);
}

TEST_F(FaultInjectionTest, RacingForTheLastInjection)
{
    // Rounds in lock step: the main thread arms one injection, then all
    // threads take at once; exactly one of them may get it.
    constexpr int kThreads = 4;
    constexpr int kRounds = 500;
    std::barrier sync(kThreads + 1);
    std::atomic<int> failures { 0 };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&] {
            for (int round = 0; round < kRounds; ++round) {
                sync.arrive_and_wait(); // armed
                if (FaultInjection::take(InjectOp::Copy) == ENOENT)
                    failures.fetch_add(1);
                sync.arrive_and_wait(); // all took
            }
        });
    int bad_rounds = 0, first_bad = -1, first_bad_failures = 0;
    for (int round = 0; round < kRounds; ++round) {
        failures.store(0);
        FaultInjection::arm(InjectOp::Copy, ENOENT, 1);
        sync.arrive_and_wait();
        sync.arrive_and_wait();
        if (failures.load() != 1 || FaultInjection::taken(InjectOp::Copy) != 1) {
            if (bad_rounds++ == 0) {
                first_bad = round;
                first_bad_failures = failures.load();
            }
        }
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(bad_rounds, 0) << "first in round " << first_bad << " with " << first_bad_failures << " failures";
}

TEST_F(FaultInjectionTest, AnyArmedSeesOnlyTheOpsArmedSinceTheLastDisarm)
{
    const uint32_t reads = FaultInjection::bit(InjectOp::FileRead) | FaultInjection::bit(InjectOp::FileReadShort);
    EXPECT_FALSE(FaultInjection::any_armed(reads));
    FaultInjection::arm(InjectOp::FileWrite, EIO, 1);
    EXPECT_FALSE(FaultInjection::any_armed(reads));
    FaultInjection::arm(InjectOp::FileReadShort, 100, 1);
    EXPECT_TRUE(FaultInjection::any_armed(reads));
    EXPECT_EQ(FaultInjection::take(InjectOp::FileReadShort), 100) << "the value is given back as armed";
    EXPECT_EQ(FaultInjection::take(InjectOp::FileReadShort), 0);
    FaultInjection::disarm_all();
    EXPECT_FALSE(FaultInjection::any_armed(reads | FaultInjection::bit(InjectOp::FileWrite)));
}
