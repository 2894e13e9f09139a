// Writes that come back short or late (issue: hardening, part 2):
// FaultInjection's FileWriteShort and WriteDelay (os/fault_injection.h).
// A short write is legal for pwrite(2) and io_uring alike — the file system
// filled up mid-request, a signal arrived — and must be finished, never
// taken for the whole write or for a failure of pages that did land; a
// short swap write is a failed one (the page stays resident). A slow device
// must stall nobody but the thread writing: faults on other regions, and
// writes to the very pages being written back, go on while it waits.
#include "os/fault_injection.h"
#include "support/temp_file.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

using os::FaultInjection;
using os::InjectOp;
using Clock = std::chrono::steady_clock;

// Write-back through io_uring in every tracking mode, and through pwrite
// (io_uring hidden).
class ShortWrites : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override { FaultInjection::disarm_all(); }
    void TearDown() override { FaultInjection::disarm_all(); }
};

char flipped(char c) { return char(c ^ 0x3C); }

TEST_P(ShortWrites, ASyncFinishesShortWritesAndCountsEveryByteOnce)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    constexpr size_t kPages = 600; // three write-back runs
    TempFile f(kPages * kPage, 131);
    int rw = f.open_again(O_RDWR);
    auto r = rt->map_file(rw, { .length = kPages * kPage, .access = Access::ReadWrite });
    close(rw);
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < kPages; ++page)
        p[page * kPage + page % 97] = flipped(f.contents()[page * kPage + page % 97]);
    const uint64_t before = rt->region_stats(p)->file_bytes_written;
    // Each run's first write stops 100 pages and 17 bytes short; the rest
    // of it is written by further calls (each cut short once more while
    // injections remain).
    FaultInjection::arm(InjectOp::FileWriteShort, int(100 * kPage + 17), 5);
    ASSERT_TRUE(rt->sync(p, kPages * kPage, SyncFlags::Sync)) << "a short write is no failure";
    EXPECT_GE(FaultInjection::taken(InjectOp::FileWriteShort), 1);
    FaultInjection::disarm_all();
    auto back = f.read_back();
    ASSERT_EQ(back.size(), kPages * kPage) << "finishing a short write never extends the file";
    size_t bad = 0;
    for (size_t page = 0; page < kPages; ++page) {
        std::vector<char> want(f.contents().begin() + page * kPage, f.contents().begin() + (page + 1) * kPage);
        want[page % 97] = flipped(want[page % 97]);
        bad += memcmp(back.data() + page * kPage, want.data(), kPage) != 0;
    }
    EXPECT_EQ(bad, 0u) << "pages wrong on disk after short writes";
    EXPECT_EQ(rt->region_stats(p)->file_bytes_written - before, kPages * kPage)
        << "every byte counted once: the short part and its rest";
}

TEST_P(ShortWrites, EvictionFinishesShortWrites)
{
    Config config { .disable = GetParam() };
    config.eviction_batch_pages = 8;
    FAULTLINE_RUNTIME_OR_SKIP(rt, config);
    if (!rt->has_feature("wp_shmem") || !rt->has_feature("minor"))
        GTEST_SKIP() << "evicting written pages needs write-protect and minor faults on shared memory";
    constexpr size_t kPages = 256;
    TempFile f(kPages * kPage, 137);
    int rw = f.open_again(O_RDWR);
    auto r = rt->map_file(rw, { .length = kPages * kPage, .access = Access::ReadWrite, .budget = 32 * kPage });
    close(rw);
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    // Every eviction write is cut to half a page first.
    FaultInjection::arm(InjectOp::FileWriteShort, int(kPage / 2), 1000);
    for (size_t page = 0; page < kPages; ++page)
        p[page * kPage + 11] = flipped(f.contents()[page * kPage + 11]);
    for (size_t page = 0; page < kPages; ++page)
        ASSERT_EQ(p[page * kPage + 11], flipped(f.contents()[page * kPage + 11])) << "page " << page;
    auto st = rt->region_stats(p);
    EXPECT_GT(st->evictions_dirty, 0u);
    EXPECT_GE(FaultInjection::taken(InjectOp::FileWriteShort), 1);
    FaultInjection::disarm_all();
    ASSERT_TRUE(rt->sync(p, kPages * kPage));
    auto back = f.read_back();
    size_t bad = 0;
    for (size_t page = 0; page < kPages; ++page)
        for (size_t at : { size_t(10), size_t(11), kPage / 2, kPage - 1 })
            bad += back[page * kPage + at] != (at == 11 ? flipped(f.contents()[page * kPage + at]) : f.contents()[page * kPage + at]);
    EXPECT_EQ(bad, 0u);
}

class SlowWrites : public ::testing::Test {
protected:
    void SetUp() override { FaultInjection::disarm_all(); }
    void TearDown() override { FaultInjection::disarm_all(); }
};

// A swap write that comes back short failed (the target is full): the page
// stays resident and reads right, and the budget is exceeded; the target is
// tried again a second later (its file system may have room by then) and
// swapping goes on.
TEST_F(SlowWrites, AShortSwapWriteKeepsThePageAndSwappingGoesOn)
{
    Config config;
    config.memory_budget = 32 * kPage;
    config.eviction_batch_pages = 8;
    FAULTLINE_RUNTIME_OR_SKIP(rt, config);
    if (!rt->stats().swap_enabled)
        GTEST_SKIP() << "no swap pager here (it needs write-protect faults on anonymous memory)";
    constexpr size_t kPages = 256;
    auto r = rt->map_anonymous({ .size = kPages * kPage, .name = "short-swap" });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    FaultInjection::arm(InjectOp::FileWriteShort, 100, 16);
    for (size_t page = 0; page < 96; ++page)
        memset(p + page * kPage, int(page + 1), kPage);
    EXPECT_GE(FaultInjection::taken(InjectOp::FileWriteShort), 1);
    EXPECT_GT(rt->stats().swap_write_errors, 0u) << "a short swap write is a failed one";
    EXPECT_GT(rt->stats().swap_full_events, 0u);
    const uint64_t out = rt->stats().swapped_out;
    FaultInjection::disarm_all(); // the file system has room again
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    for (size_t page = 96; page < kPages; ++page)
        memset(p + page * kPage, int(page + 1), kPage);
    size_t bad = 0;
    for (size_t page = 0; page < kPages; ++page)
        for (size_t at : { size_t(0), size_t(99), kPage - 100, kPage - 1 })
            bad += p[page * kPage + at] != char(page + 1);
    EXPECT_EQ(bad, 0u) << "a page whose swap write came back short must never read otherwise";
    EXPECT_GT(rt->stats().swapped_out, out) << "the target was never tried again";
}

// While a sync waits on a slow device (the writing thread sleeps in the
// write), other threads fault in other regions, and write the very pages
// being written back; the sync then returns and a second one writes what
// was written meanwhile.
TEST_P(ShortWrites, ASlowWriteBackStallsNoFault)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    constexpr size_t kPages = 64;
    TempFile f(kPages * kPage, 139);
    TempFile g(kPages * kPage, 149);
    int rw = f.open_again(O_RDWR);
    auto r = rt->map_file(rw, { .length = kPages * kPage, .access = Access::ReadWrite });
    close(rw);
    ASSERT_TRUE(r) << r.error().message();
    auto other = rt->map_file(g.fd(), { .length = kPages * kPage });
    ASSERT_TRUE(other) << other.error().message();
    auto anon = rt->map_anonymous({ .size = 256 * kPage });
    ASSERT_TRUE(anon);
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < kPages; ++page)
        p[page * kPage] = flipped(f.contents()[page * kPage]);
    constexpr int kDelayMs = 1500;
    FaultInjection::arm(InjectOp::WriteDelay, kDelayMs, 1);
    std::atomic<bool> synced { false };
    bool sync_ok = false;
    const auto start = Clock::now();
    std::thread syncer([&] {
        sync_ok = bool(rt->sync(p, kPages * kPage, SyncFlags::Sync));
        synced = true;
    });
    while (FaultInjection::taken(InjectOp::WriteDelay) < 1 && Clock::now() - start < std::chrono::seconds(10))
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_EQ(FaultInjection::taken(InjectOp::WriteDelay), 1);
    // The sync sleeps in its write now.
    auto* a = static_cast<volatile char*>(*anon);
    for (size_t page = 0; page < 256; ++page)
        a[page * kPage] = char(page);
    auto* q = static_cast<volatile char*>(*other);
    size_t bad = 0;
    for (size_t page = 0; page < kPages; ++page)
        bad += q[page * kPage + 1] != g.contents()[page * kPage + 1];
    for (size_t page = 0; page < kPages; page += 4)
        p[page * kPage + 1] = 'w'; // pages the sync is writing back
    const bool stalled = synced.load();
    const auto waited = Clock::now() - start;
    syncer.join();
    EXPECT_EQ(bad, 0u);
    EXPECT_TRUE(sync_ok);
    if (stalled)
        ADD_FAILURE() << "the faults took " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
                      << " ms against a " << kDelayMs << " ms write: they waited for the slow write-back";
    // The first sync wrote the first writes; what was written during it is
    // dirty again (or, untracked, always written) and the next sync writes it.
    ASSERT_TRUE(rt->sync(p, kPages * kPage, SyncFlags::Sync));
    auto back = f.read_back();
    size_t lost = 0;
    for (size_t page = 0; page < kPages; ++page) {
        lost += back[page * kPage] != flipped(f.contents()[page * kPage]);
        if (page % 4 == 0)
            lost += back[page * kPage + 1] != 'w';
    }
    EXPECT_EQ(lost, 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, ShortWrites, ::testing::Values("", "wp_async", "wp_shmem", "minor", "io_uring"),
    [](const auto& info) { return std::string(*info.param ? info.param : "tracked"); });

} // namespace
} // namespace faultline::testing
