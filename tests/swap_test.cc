// The swap pager (issue: budgeted heap, part 1): anonymous memory under the
// memory budget. Pages written, swapped out and faulted back byte-exact
// (both policies); resident pages held under budget + one batch while 8
// threads write and verify a region 4x the budget; clean swapped-in pages
// evicted without a write; slots reclaimed on rewrite, discard and unmap; a
// swap read error is SIGBUS in the faulting thread; a swap write error
// keeps the page; a full swap exceeds the budget and never crashes; fork
// without exec finds swapped pages in the child; bad configurations.
#include "fork_support.h"
#include "os/fault_injection.h"
#include "support/guarded_access.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <fcntl.h>
#include <functional>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

constexpr unsigned kBatch = 16;

Config swap_config(size_t budget_pages, EvictionPolicy policy = EvictionPolicy::Clock)
{
    Config c;
    c.memory_budget = budget_pages * kPage;
    c.eviction_batch_pages = kBatch;
    c.eviction_policy = policy;
    return c;
}

#define SWAP_RUNTIME_OR_SKIP(rt, config)                                                                   \
    FAULTLINE_RUNTIME_OR_SKIP(rt, config);                                                                 \
    if (!rt->stats().swap_enabled)                                                                         \
    GTEST_SKIP() << "no swap pager here (it needs write-protect faults on anonymous memory)"

// A byte of page `page` at offset `at` in generation `gen`: every page and
// generation differs, so a page from the wrong slot or an old write shows.
unsigned char pattern(size_t page, size_t at, unsigned gen)
{
    return static_cast<unsigned char>(page * 131 + at * 7 + gen * 29 + 1);
}

void fill_page(char* base, size_t page, unsigned gen)
{
    for (size_t at = 0; at < kPage; at += 64)
        base[page * kPage + at] = char(pattern(page, at, gen));
}

bool page_ok(const char* base, size_t page, unsigned gen)
{
    for (size_t at = 0; at < kPage; at += 64)
        if (static_cast<unsigned char>(base[page * kPage + at]) != pattern(page, at, gen))
            return false;
    return true;
}

void wait_for(const std::function<bool()>& done)
{
    for (int i = 0; i < 2000 && !done(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
}

class Swap : public ::testing::TestWithParam<EvictionPolicy> {};

TEST_P(Swap, PagesComeBackByteExactAfterSwapOut)
{
    const size_t budget = 128;
    SWAP_RUNTIME_OR_SKIP(rt, swap_config(budget, GetParam()));
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 1);
    RuntimeStats st = rt->stats();
    EXPECT_GT(st.swapped_out, 0u) << "a region 4x the budget must swap";
    EXPECT_LE(st.budget_resident_bytes, (budget + kBatch) * kPage);
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 1)) << "page " << i;
    st = rt->stats();
    EXPECT_GT(st.swapped_in, 0u);
    EXPECT_EQ(st.swap_read_errors, 0u);
    EXPECT_EQ(st.swap_write_errors, 0u);
    // Reads bring pages back clean: once cold again they go without a write.
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 1)) << "page " << i;
    EXPECT_GT(rt->stats().swap_clean_drops, 0u);
    // Rewritten: new bytes win over the slot's.
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 2);
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 2)) << "page " << i;
    EXPECT_GT(rt->stats().swap_slots_reclaimed, 0u);
    ASSERT_TRUE(rt->unmap(*r, pages * kPage));
    EXPECT_EQ(rt->stats().swap_slots_used, 0u) << "unmap gives every slot back";
    EXPECT_EQ(rt->stats().budget_resident_bytes, 0u) << "and every charge";
}

TEST_P(Swap, EightThreadsWritingAndVerifyingStayUnderTheBudget)
{
    const size_t budget = 256;
    SWAP_RUNTIME_OR_SKIP(rt, swap_config(budget, GetParam()));
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    std::atomic<bool> stop { false };
    std::atomic<size_t> bad { 0 };
    size_t max_resident = 0;
    std::vector<std::thread> threads;
    // Each thread owns the pages i with i % 8 == t, and keeps a generation
    // per page: a wrong byte is a lost write or a wrong slot.
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            std::vector<unsigned> gen(pages, 0);
            std::mt19937_64 rng(t);
            for (int i = 0; i < 4000; ++i) {
                const size_t page = (rng() % (pages / 8)) * 8 + size_t(t);
                if (gen[page] && !page_ok(p, page, gen[page]))
                    ++bad;
                if (rng() % 2)
                    fill_page(p, page, ++gen[page]);
            }
            for (size_t page = size_t(t); page < pages; page += 8)
                if (gen[page] && !page_ok(p, page, gen[page]))
                    ++bad;
        });
    std::thread sampler([&] {
        while (!stop) {
            max_resident = std::max<size_t>(max_resident, rt->stats().budget_resident_bytes);
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });
    for (auto& t : threads)
        t.join();
    stop = true;
    sampler.join();
    EXPECT_EQ(bad.load(), 0u);
    const RuntimeStats st = rt->stats();
    EXPECT_LE(max_resident, (budget + kBatch) * kPage) << "never above the budget by more than one batch";
    EXPECT_GT(st.swapped_out, 0u);
    EXPECT_GT(st.swapped_in, 0u);
}

INSTANTIATE_TEST_SUITE_P(Policies, Swap, ::testing::Values(EvictionPolicy::Clock, EvictionPolicy::Fifo),
    [](const auto& info) { return info.param == EvictionPolicy::Clock ? "Clock" : "Fifo"; });

TEST(SwapDiscard, FreesSlotsAndReadsZeros)
{
    const size_t budget = 64;
    SWAP_RUNTIME_OR_SKIP(rt, swap_config(budget, EvictionPolicy::Fifo));
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 3);
    wait_for([&] { return rt->stats().swap_slots_used > 0; });
    const uint64_t used = rt->stats().swap_slots_used;
    ASSERT_GT(used, 0u);
    ASSERT_TRUE(rt->discard(*r, pages * kPage));
    // A batch the evictor was writing when the discard came is cancelled;
    // the evictor frees its slots as it finishes.
    wait_for([&] { return rt->stats().swap_slots_used == 0; });
    EXPECT_EQ(rt->stats().swap_slots_used, 0u);
    for (size_t i = 0; i < pages; ++i)
        for (size_t at = 0; at < kPage; at += 512)
            ASSERT_EQ(p[i * kPage + at], 0) << "a discarded page reads zeros, never its old slot";
}

TEST(SwapErrors, AReadErrorIsSigbusInTheFaultingThreadOnly)
{
    const size_t budget = 64;
    SWAP_RUNTIME_OR_SKIP(rt, swap_config(budget, EvictionPolicy::Fifo));
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 4);
    // Page 0 was written first: under FIFO it is long swapped out.
    wait_for([&] { return rt->stats().swapped_out >= pages - budget - kBatch; });
    os::FaultInjection::arm(os::InjectOp::FileRead, EIO, 1000);
    const int sig = guarded_access([&] { (void)*reinterpret_cast<volatile const char*>(p); });
    os::FaultInjection::disarm_all();
    EXPECT_EQ(sig, SIGBUS);
    EXPECT_GT(rt->stats().swap_read_errors, 0u);
    // Only that page: the others still come back.
    for (size_t i = 1; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 4)) << "page " << i;
    // A page that could not be read stays unreadable (with UFFDIO_POISON
    // it is poisoned; without, it faults and is read again) until it is
    // discarded, which gives it back as zeros.
    ASSERT_TRUE(rt->discard(p, kPage));
    EXPECT_EQ(p[0], 0);
    EXPECT_EQ(p[kPage - 1], 0);
}

TEST(SwapErrors, AWriteErrorKeepsThePage)
{
    const size_t budget = 64;
    SWAP_RUNTIME_OR_SKIP(rt, swap_config(budget, EvictionPolicy::Fifo));
    const size_t pages = 2 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    os::FaultInjection::arm(os::InjectOp::FileWrite, EIO, 1 << 30);
    std::thread writer([&] {
        for (size_t i = 0; i < pages; ++i)
            fill_page(p, i, 5);
    });
    writer.join();
    wait_for([&] { return rt->stats().swap_write_errors > 0; });
    os::FaultInjection::disarm_all();
    EXPECT_GT(rt->stats().swap_write_errors, 0u);
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 5)) << "page " << i;
}

TEST(SwapErrors, AFullSwapExceedsTheBudgetAndNeverCrashes)
{
    const size_t budget = 64;
    Config c = swap_config(budget, EvictionPolicy::Fifo);
    c.swap_size = 2 * kBatch * kPage; // two batches of slots
    SWAP_RUNTIME_OR_SKIP(rt, c);
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 6);
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 6)) << "page " << i;
    const RuntimeStats st = rt->stats();
    EXPECT_GT(st.swap_full_events, 0u);
    EXPECT_LE(st.swap_slots_used, st.swap_slots_total);
    EXPECT_GT(st.budget_resident_bytes, (budget + kBatch) * kPage) << "the budget is exceeded, not enforced by failing";
}

TEST(SwapFork, AChildWithoutExecReadsSwappedPages)
{
    const size_t budget = 64;
    SWAP_RUNTIME_OR_SKIP(rt, swap_config(budget, EvictionPolicy::Fifo));
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 7);
    wait_for([&] { return rt->stats().swapped_out > 0; });
    ASSERT_GT(rt->stats().swapped_out, 0u);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        for (size_t i = 0; i < pages; ++i)
            if (!page_ok(p, i, 7))
                _exit(10);
        fill_page(p, 1, 8); // the child's memory is its own
        _exit(page_ok(p, 1, 8) ? 0 : 11);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10: a swapped page read wrong in the child";
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 7)) << "page " << i;
}

TEST(SwapConfig, BadSwapSettingsAreRefused)
{
    Config c = swap_config(64);
    c.swap_size = kPage; // less than one batch
    auto rt = Runtime::create(c);
    if (!rt && rt.error().code() != EINVAL)
        GTEST_SKIP() << rt.error().message();
    if (rt && !(*rt)->stats().swap_enabled)
        GTEST_SKIP() << "no swap pager here";
    ASSERT_FALSE(rt);
    EXPECT_EQ(rt.error().code(), EINVAL);

    c = swap_config(64);
    c.swap_path = "/proc/self/faultline-swap"; // a filesystem that cannot hold a file
    rt = Runtime::create(c);
    ASSERT_FALSE(rt);
    EXPECT_NE(rt.error().code(), 0);

    char dir[] = "/tmp/faultline-swap-test-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir));
    const std::string existing = std::string(dir) + "/exists";
    close(open(existing.c_str(), O_CREAT | O_WRONLY, 0600));
    c.swap_path = existing; // never someone's existing file
    rt = Runtime::create(c);
    ASSERT_FALSE(rt);
    EXPECT_EQ(rt.error().code(), EEXIST);
    c.swap_path = dir; // a directory: an unlinked file in it
    rt = Runtime::create(c);
    ASSERT_TRUE(rt) << rt.error().message();
    unlink(existing.c_str());
    EXPECT_EQ(rmdir(dir), 0) << "the swap file is unlinked at once";
}

TEST(SwapConfig, ASwapOnAReadOnlyFilesystemIsRefused)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "mounting a read-only tmpfs needs root";
    {
        SWAP_RUNTIME_OR_SKIP(probe, swap_config(64));
    }
    char dir[] = "/tmp/faultline-ro-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir));
    if (mount("tmpfs", dir, "tmpfs", MS_RDONLY, "size=1m") != 0) {
        rmdir(dir);
        GTEST_SKIP() << "cannot mount a tmpfs here: " << strerror(errno);
    }
    Config c = swap_config(64);
    c.swap_path = dir;
    auto rt = Runtime::create(c);
    umount(dir);
    rmdir(dir);
    ASSERT_FALSE(rt);
    EXPECT_EQ(rt.error().code(), EROFS);
}

} // namespace
} // namespace faultline::testing
