// The fault service under real threads: same page, random pages, kernel-mode
// faults, fault-around and deduplication.
#include "test_support.h"

#include <atomic>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <chrono>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace faultline;
using faultline::testing::kPage;

TEST(FaultService, SixteenThreadsSamePage)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .handler_threads = 2 });
    for (int round = 0; round < 20; ++round) {
        auto r = rt->map_anonymous({ .size = 4 * kPage });
        ASSERT_TRUE(r);
        auto* p = static_cast<std::atomic<uint64_t>*>(*r);
        std::atomic<int> ready { 0 };
        std::vector<std::thread> threads;
        for (int t = 0; t < 16; ++t) {
            threads.emplace_back([&, t] {
                ready.fetch_add(1);
                while (ready.load() < 16)
                    std::this_thread::yield();
                // Half read, half write the same page at once.
                if (t % 2)
                    p[0].fetch_add(1);
                else
                    (void)p[1].load();
            });
        }
        for (auto& t : threads)
            t.join();
        EXPECT_EQ(p[0].load(), 8u);
        EXPECT_EQ(p[1].load(), 0u);
        ASSERT_TRUE(rt->unmap(*r, 4 * kPage));
    }
    auto st = rt->stats();
    EXPECT_GT(st.fault_events, 0u);
}

TEST(FaultService, SixteenThreadsRandomPagesBytesCorrect)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .handler_threads = 2 });
    const size_t pages = 8192;
    auto r = rt->map_anonymous({ .size = pages * kPage, .name = "random" });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    std::vector<std::thread> threads;
    std::atomic<size_t> wrong { 0 };
    for (int t = 0; t < 16; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937_64 rng(t);
            for (int i = 0; i < 4000; ++i) {
                size_t page = rng() % pages;
                // Each thread owns byte t of every page: writes never
                // conflict, so every read can be checked exactly.
                char* b = p + page * kPage + t * 8;
                char before = *b;
                if (before != 0 && before != char(t + 1))
                    wrong.fetch_add(1);
                *b = char(t + 1);
            }
        });
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(wrong.load(), 0u);
    // Every byte is either 0 or its owner's mark; every untouched byte is 0.
    for (size_t page = 0; page < pages; ++page) {
        for (size_t off = 0; off < kPage; ++off) {
            char c = p[page * kPage + off];
            if (off % 8 == 0 && off / 8 < 16)
                ASSERT_TRUE(c == 0 || c == char(off / 8 + 1)) << page << "+" << off;
            else
                ASSERT_EQ(c, 0) << page << "+" << off;
        }
    }
}

TEST(FaultService, FaultAroundInstallsWindow)
{
    // The window is filled before the thread is woken (AfterWindow), so it
    // can be counted as soon as the touch returns.
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 16, .wake_order = WakeOrder::AfterWindow });
    auto r = rt->map_anonymous({ .size = 64 * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    p[5 * kPage] = 1; // one write fault
    auto st = rt->region_stats(p);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->zero_faults, 1u);
    EXPECT_EQ(st->pages_installed, 16u);
    EXPECT_EQ(st->amount_resident, 16 * kPage);
    // Touching the rest of the window takes no further event.
    for (int i = 0; i < 16; ++i)
        p[i * kPage + 1] = 2;
    EXPECT_EQ(rt->region_stats(p)->zero_faults, 1u);
    // The window stops at the region's end.
    auto small = rt->map_anonymous({ .size = 3 * kPage });
    ASSERT_TRUE(small);
    static_cast<char*>(*small)[0] = 1;
    EXPECT_EQ(rt->region_stats(*small)->pages_installed, 3u);
}

TEST(FaultService, FaultAroundOff)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    auto r = rt->map_anonymous({ .size = 8 * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    for (int i = 0; i < 8; ++i)
        p[i * kPage] = 1;
    auto st = rt->region_stats(p);
    EXPECT_EQ(st->zero_faults, 8u);
    EXPECT_EQ(st->pages_installed, 8u);
}

TEST(FaultService, ReadFaultMapsZeroPage)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 4, .wake_order = WakeOrder::AfterWindow });
    if (!rt->has_feature("zeropage"))
        GTEST_SKIP() << "UFFDIO_ZEROPAGE not available here";
    auto r = rt->map_anonymous({ .size = 8 * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile char*>(*r);
    EXPECT_EQ(p[0], 0);
    auto st = rt->region_stats(const_cast<char*>(p));
    EXPECT_EQ(st->amount_resident, 0u) << "read faults must not allocate private pages";
    EXPECT_EQ(st->amount_zero_mapped, 4 * kPage);
    // Writing a zero-mapped page is resolved by the kernel (no new event).
    uint64_t before = rt->stats().fault_events;
    p[0] = 5;
    EXPECT_EQ(p[0], 5);
    EXPECT_EQ(rt->stats().fault_events, before);
    st = rt->region_stats(const_cast<char*>(p));
    EXPECT_EQ(st->amount_resident, kPage);
    EXPECT_EQ(st->amount_dirty, kPage);
}

TEST(FaultService, KernelModeFaultIsServed)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .uffd_mode = Config::UffdMode::Full });
    auto r = rt->map_anonymous({ .size = 4 * kPage });
    ASSERT_TRUE(r);
    // read(2) writes into an unpopulated page from inside the kernel.
    int fd = open("/proc/self/exe", O_RDONLY);
    ASSERT_GE(fd, 0);
    ssize_t n = read(fd, *r, 2 * kPage);
    close(fd);
    ASSERT_EQ(n, ssize_t(2 * kPage));
    EXPECT_EQ(memcmp(*r, "\177ELF", 4), 0);
}

TEST(FaultService, ManyRegionsOneRegistration)
{
    // One registration for the whole arena: thousands of regions must not
    // run into per-registration limits (umap's ENOMEM past ~900).
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    std::vector<char*> regions;
    for (int i = 0; i < 3000; ++i) {
        auto r = rt->map_anonymous({ .size = kPage });
        ASSERT_TRUE(r) << i << ": " << r.error().message();
        regions.push_back(static_cast<char*>(*r));
        regions.back()[0] = char(i);
    }
    for (int i = 0; i < 3000; ++i)
        ASSERT_EQ(regions[i][0], char(i));
    for (char* p : regions)
        ASSERT_TRUE(rt->unmap(p, kPage));
}

TEST(FaultService, PerThreadCounters)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    if (!rt->has_feature("thread_id"))
        GTEST_SKIP() << "UFFD_FEATURE_THREAD_ID not available here";
    auto r = rt->map_anonymous({ .size = 64 * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    int tid = 0;
    std::thread t([&] {
        tid = gettid();
        for (int i = 0; i < 10; ++i)
            p[i * kPage] = 1;
    });
    t.join();
    auto st = rt->stats();
    ASSERT_TRUE(st.thread_ids_available);
    bool found = false;
    for (auto& c : st.threads)
        if (c.tid == tid) {
            EXPECT_EQ(c.faults, 10u);
            found = true;
        }
    EXPECT_TRUE(found);
}

TEST(FaultService, WakeBeforeFaultAround)
{
    // Threads run on while their windows are filled: touching a window page
    // before it is installed must still end in the right bytes.
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .handler_threads = 2, .fault_around_pages = 64, .wake_order = WakeOrder::BeforeWindow });
    const size_t pages = 4096;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (size_t i = t; i < pages; i += 4)
                p[i * kPage + 1] = char(i);
        });
    for (auto& t : threads)
        t.join();
    for (size_t i = 0; i < pages; ++i) {
        ASSERT_EQ(p[i * kPage + 1], char(i)) << i;
        ASSERT_EQ(p[i * kPage], 0) << i;
    }
    // The windows are filled after the wake, so a handler may still be
    // finishing the last one (its pages are there already: installed by the
    // handler that took their own faults, or about to be counted): wait for
    // the count to settle rather than read it mid-window.
    auto st = rt->region_stats(p);
    for (int i = 0; i < 500 && st->pages_installed != pages; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        st = rt->region_stats(p);
    }
    EXPECT_EQ(st->pages_installed, pages);
    EXPECT_EQ(st->amount_resident, pages * kPage);
}
