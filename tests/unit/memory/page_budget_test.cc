// PageBudget without a kernel: charges up to the hard mark (budget + one
// batch), partial charges near it, the high-mark wake-up, parked faults
// released with -EAGAIN, tightening, and the overrun that keeps faults from
// waiting forever.
#include "memory/page_budget.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

namespace faultline::memory {
namespace {

struct Wakes {
    int count = 0;
    static void wake(void* self) noexcept { ++static_cast<Wakes*>(self)->count; }
};

struct Posts : CompletionPort {
    std::vector<std::pair<uint32_t, int64_t>> got;
    void post(PendingToken token, int64_t result) noexcept override { got.emplace_back(token.slot, result); }
};

TEST(PageBudget, ChargesUpToTheBudgetPlusOneBatch)
{
    Wakes w;
    PageBudget b(100, 90, 80, 10, &Wakes::wake, &w);
    EXPECT_EQ(b.high(), 90u);
    EXPECT_EQ(b.low(), 80u);
    EXPECT_EQ(b.charge(85, 1), 85u);
    EXPECT_EQ(w.count, 0) << "below the high mark nobody is woken";
    EXPECT_EQ(b.charge(10, 1), 10u);
    EXPECT_GE(w.count, 1) << "crossing the high mark wakes the evictor";
    EXPECT_TRUE(b.over_high());
    // 95 resident; the hard mark is 110: a request of 30 gets 15.
    EXPECT_EQ(b.charge(30, 1), 15u);
    EXPECT_EQ(b.resident(), 110u);
    EXPECT_EQ(b.charge(1, 1), 0u) << "nothing past budget + one batch";
    EXPECT_EQ(b.charge(5, 5), 0u);
    b.uncharge(20);
    EXPECT_EQ(b.charge(30, 25), 0u) << "fewer than `need` fit: nothing is charged";
    EXPECT_EQ(b.resident(), 90u);
    b.uncharge(1000);
    EXPECT_EQ(b.resident(), 0u) << "never below zero";
}

TEST(PageBudget, ParkedFaultsAreReleasedWithEagain)
{
    Wakes w;
    Posts port;
    PageBudget b(16, 90, 50, 4, &Wakes::wake, &w);
    EXPECT_FALSE(b.park(PendingToken {}, &port)) << "no token, nothing to post";
    EXPECT_FALSE(b.park(PendingToken { 1, 0 }, nullptr));
    for (uint32_t i = 0; i < PageBudget::kMaxWaiters; ++i)
        ASSERT_TRUE(b.park(PendingToken { i, 7 }, &port));
    EXPECT_FALSE(b.park(PendingToken { 999, 0 }, &port)) << "a full list: the fault retries at once";
    EXPECT_EQ(b.waiters(), PageBudget::kMaxWaiters);
    EXPECT_EQ(b.parked_total(), PageBudget::kMaxWaiters);
    b.release_waiters();
    EXPECT_EQ(b.waiters(), 0u);
    ASSERT_EQ(port.got.size(), PageBudget::kMaxWaiters);
    for (auto& [slot, result] : port.got)
        EXPECT_EQ(result, -EAGAIN);
}

TEST(PageBudget, OverrunLetsEverythingThroughAndTightenLowersTheBudget)
{
    PageBudget b(10, 90, 50, 2, nullptr, nullptr);
    EXPECT_EQ(b.charge(12, 1), 12u);
    EXPECT_EQ(b.charge(1, 1), 0u);
    EXPECT_EQ(b.overruns(), 0u);
    b.set_overrun(true);
    b.set_overrun(true);
    EXPECT_EQ(b.overruns(), 1u) << "an overrun is counted when the budget opens, not while it stays open";
    EXPECT_EQ(b.charge(5, 5), 5u);
    b.set_overrun(false);
    EXPECT_EQ(b.charge(1, 1), 0u);
    b.set_overrun(true);
    b.set_overrun(false);
    EXPECT_EQ(b.overruns(), 2u);
    b.tighten(100);
    EXPECT_EQ(b.budget(), 10u) << "tighten never raises the budget";
    b.tighten(4);
    EXPECT_EQ(b.budget(), 4u);
    EXPECT_TRUE(b.over_high());
}

} // namespace
} // namespace faultline::memory
