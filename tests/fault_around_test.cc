// Adaptive fault-around against the real kernel (issue: the fault path for
// every kind, part 7), fills that meet several VMAs of one region, and
// fault counters that stay with their pages across splits (part 10).
#include "test_support.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <sys/mman.h>
#include <thread>

namespace faultline::testing {
namespace {

TEST(FaultAround, SequentialTouchGrowsTheWindow)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 32, .fault_around_max_pages = 512 });
    const size_t pages = 4096;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        p[i * kPage] = char(i | 1);
    auto st = rt->region_stats(const_cast<char*>(p));
    ASSERT_TRUE(st);
    // 32 + 64 + 192 + 512 * 7 + the rest: a dozen faults, where a fixed
    // window of 32 takes 128 (the first, isolated fault is woken before its
    // window is in, so the toucher may take a fault or two inside it).
    EXPECT_LE(st->zero_faults, 20u);
    EXPECT_EQ(st->pages_installed, pages);
    for (size_t i = 0; i < pages; ++i)
        ASSERT_EQ(p[i * kPage], char(i | 1));
}

TEST(FaultAround, DescendingTouchGrowsTheWindowDownwards)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 32, .fault_around_max_pages = 512 });
    const size_t pages = 4096;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile char*>(*r);
    for (size_t i = pages; i-- > 0;)
        p[i * kPage] = 1;
    auto st = rt->region_stats(const_cast<char*>(p));
    ASSERT_TRUE(st);
    EXPECT_LE(st->zero_faults, 20u);
}

TEST(FaultAround, SparseTouchKeepsTheSmallWindow)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 32, .fault_around_max_pages = 512 });
    const size_t pages = 64 * 64;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile char*>(*r);
    for (size_t i = 0; i < pages; i += 64)
        p[i * kPage] = 1;
    // An isolated fault's window is filled after its thread is woken: let
    // the last one finish before counting.
    auto st = rt->region_stats(const_cast<char*>(p));
    for (int i = 0; i < 500 && st && st->pages_installed < pages / 64 * 32; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        st = rt->region_stats(const_cast<char*>(p));
    }
    ASSERT_TRUE(st);
    EXPECT_EQ(st->zero_faults, pages / 64);
    EXPECT_EQ(st->pages_installed, pages / 64 * 32) << "an isolated fault installs fault_around_pages, no more";
}

TEST(FaultAround, FixedWindowWhenMaxEqualsMin)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 16, .fault_around_max_pages = 16, .wake_order = WakeOrder::AfterWindow });
    auto r = rt->map_anonymous({ .size = 1024 * kPage });
    ASSERT_TRUE(r);
    memset(*r, 1, 1024 * kPage);
    auto st = rt->region_stats(*r);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->zero_faults, 1024u / 16);
}

TEST(FaultAround, OnePageMeansNoFaultAround)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    EXPECT_EQ(rt->config().fault_around_max_pages, 1u) << "automatic max for a window of 1 is 1";
    auto r = rt->map_anonymous({ .size = 64 * kPage });
    ASSERT_TRUE(r);
    memset(*r, 1, 64 * kPage);
    auto st = rt->region_stats(*r);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->zero_faults, 64u);
    EXPECT_EQ(st->pages_installed, 64u);
}

TEST(FaultAround, BadLimitsAreRefused)
{
    for (auto [min, max] : { std::pair { 32u, 16u }, std::pair { 32u, 513u }, std::pair { 0u, 0u }, std::pair { 600u, 0u } }) {
        auto rt = Runtime::create(Config { .fault_around_pages = min, .fault_around_max_pages = max });
        ASSERT_FALSE(rt) << min << ".." << max;
        EXPECT_EQ(rt.error().code(), EINVAL);
    }
}

TEST(FaultAround, AdaptiveWakeOrderFillsIsolatedWindowsAfterTheWakeAndStreamsBefore)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 32, .fault_around_max_pages = 512 });
    auto r = rt->map_anonymous({ .size = 4096 * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile char*>(*r);
    // An isolated fault: its window arrives, after the wake.
    p[100 * kPage] = 1;
    auto st = rt->region_stats(const_cast<char*>(p));
    for (int i = 0; i < 500 && st->pages_installed < 32; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        st = rt->region_stats(const_cast<char*>(p));
    }
    EXPECT_EQ(st->pages_installed, 32u);
    for (size_t i = 96; i < 128; ++i)
        EXPECT_EQ(p[i * kPage + 5], 0);
    EXPECT_EQ(rt->region_stats(const_cast<char*>(p))->zero_faults, 1u) << "reading the window took no fault";
    // A fault right above it is a stream: its 64-page window is in when the
    // touch returns, and the window after it is read ahead once it is woken.
    p[128 * kPage] = 1;
    // (The statistics wait for batches in flight: a thread can run on as
    // soon as its page is in, before the handler has counted it.)
    st = rt->region_stats(const_cast<char*>(p));
    EXPECT_GE(st->pages_installed, 32u + 64u);
    for (int i = 0; i < 500 && st->pages_installed < 32 + 64 + 192; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        st = rt->region_stats(const_cast<char*>(p));
    }
    EXPECT_EQ(st->pages_installed, 32u + 64u + 192u) << "the stream's next window (twice the 96 pages below 192)";
    EXPECT_EQ(st->zero_faults, 2u);
    for (size_t i = 192; i < 384; ++i)
        EXPECT_EQ(p[i * kPage + 7], 0);
    EXPECT_EQ(rt->region_stats(const_cast<char*>(p))->zero_faults, 2u) << "the read-ahead window took no fault";
}

TEST(FaultAround, WindowsCrossingVmaBoundariesInsideARegionAreServed)
{
    // A region is usually one VMA, but need not be (VMAs that could not
    // merge after earlier changes). A fill that spans two makes the kernel
    // answer ENOENT for the whole call: the runtime must go on page by
    // page rather than take the region for gone (which looped forever).
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 32, .fault_around_max_pages = 512 });
    const size_t pages = 1024;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    auto* base = static_cast<char*>(*r);
    // Split the VMA in several places without touching the registration.
    for (size_t at : { 100, 300, 301, 700 })
        ASSERT_EQ(madvise(base + at * kPage, kPage, MADV_NOHUGEPAGE), 0);
    for (size_t i = 0; i < pages; ++i)
        base[i * kPage] = char(i | 1);
    for (size_t i = 0; i < pages; ++i)
        ASSERT_EQ(base[i * kPage], char(i | 1)) << "page " << i;
}

TEST(FaultCounters, StayWithTheirPagesAcrossASplit)
{
    // README's example: touch a region, make its first part read-only (the
    // region splits), and ask for the counters of the rest. They must not
    // have stayed with the other piece.
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 8, .fault_around_max_pages = 8, .wake_order = WakeOrder::AfterWindow });
    auto r = rt->map_anonymous({ .size = 256 * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    memset(p, 1, 256 * kPage);
    ASSERT_TRUE(rt->protect(p, 64 * kPage, Access::Read));
    auto low = rt->region_stats(p);
    auto high = rt->region_stats(p + 128 * kPage);
    ASSERT_TRUE(low && high);
    EXPECT_EQ(low->zero_faults + high->zero_faults, 256u / 8);
    EXPECT_EQ(low->pages_installed + high->pages_installed, 256u);
    EXPECT_EQ(low->pages_installed, 64u);
    EXPECT_EQ(high->pages_installed, 192u);
    EXPECT_EQ(high->zero_faults, 24u);
    // A split of a split keeps adding up.
    ASSERT_TRUE(rt->set_name(p + 128 * kPage, 64 * kPage, "middle"));
    uint64_t faults = 0, installed = 0;
    for (auto& s : rt->regions()) {
        faults += s.zero_faults;
        installed += s.pages_installed;
    }
    EXPECT_EQ(faults, 256u / 8);
    EXPECT_EQ(installed, 256u);
}

} // namespace
} // namespace faultline::testing
