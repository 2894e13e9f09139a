// The memory budget (issue: budget, eviction and stores): resident file
// pages held under budget + one batch while 8 threads read a file larger
// than the budget; dirty pages written back before eviction and read back
// byte-exact; a store whose writes fail (pages stay, others go); unmap while
// eviction runs; a region's own budget; bad configurations.
#include "fork_support.h"
#include "support/temp_file.h"
#include "test_support.h"

#include <faultline/store.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

constexpr unsigned kBatch = 16;

Config budget_config(size_t pages, EvictionPolicy policy = EvictionPolicy::Clock)
{
    Config c;
    c.memory_budget = pages * kPage;
    c.eviction_batch_pages = kBatch;
    c.eviction_policy = policy;
    return c;
}

class Budget : public ::testing::TestWithParam<EvictionPolicy> {};

TEST_P(Budget, EightThreadsReadingAFileLargerThanTheBudgetStayUnderIt)
{
    const size_t budget_pages = 256; // 1 MiB
    FAULTLINE_RUNTIME_OR_SKIP(rt, budget_config(budget_pages, GetParam()));
    TempFile f(4 * 1024 * 1024, 11); // 4x the budget
    auto r = rt->map_file(f.fd(), { .length = f.size(), .readahead_max_pages = 32 });
    ASSERT_TRUE(r) << r.error().message();
    const char* p = static_cast<const char*>(*r);
    const size_t pages = f.size() / kPage;
    std::atomic<bool> stop { false };
    std::atomic<size_t> bad { 0 }, reads { 0 };
    size_t max_resident = 0;
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            std::mt19937_64 rng(t);
            for (int i = 0; i < 3000; ++i) {
                const size_t page = rng() % pages;
                const size_t at = page * kPage + rng() % kPage;
                bad += p[at] != f.contents()[at];
                ++reads;
            }
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
    EXPECT_EQ(st.memory_budget, budget_pages * kPage);
    EXPECT_LE(max_resident, (budget_pages + kBatch) * kPage) << "never above the budget by more than one batch";
    EXPECT_LE(st.budget_resident_bytes, (budget_pages + kBatch) * kPage);
    EXPECT_GT(st.evictions_clean, 0u) << "a file 4x the budget must evict";
    EXPECT_EQ(st.evictions_dirty, 0u);
    auto rs = rt->region_stats(*r);
    ASSERT_TRUE(rs);
    EXPECT_LE(rs->cached_pages, budget_pages + kBatch);
    EXPECT_NE(rt->to_json().find("\"evictions_clean\""), std::string::npos);
}

TEST_P(Budget, DirtyPagesAreWrittenBackBeforeEvictionAndReadBackExactly)
{
    const size_t budget_pages = 128;
    FAULTLINE_RUNTIME_OR_SKIP(rt, budget_config(budget_pages, GetParam()));
    if (!rt->has_feature("wp_shmem") || !rt->has_feature("minor"))
        GTEST_SKIP() << "evicting written pages needs write-protect and minor faults on shared memory";
    TempFile f(2 * 1024 * 1024, 3); // 512 pages, 4x the budget
    const size_t pages = f.size() / kPage;
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    // Write every page (a byte pattern per page), several passes, from two
    // threads on interleaved pages.
    auto value = [](size_t page, int pass) { return char(page * 7 + pass * 31 + 1); };
    for (int pass = 0; pass < 3; ++pass) {
        std::thread a([&] {
            for (size_t page = 0; page < pages; page += 2)
                p[page * kPage + page % 100] = value(page, pass);
        });
        std::thread b([&] {
            for (size_t page = 1; page < pages; page += 2)
                p[page * kPage + page % 100] = value(page, pass);
        });
        a.join();
        b.join();
    }
    const RuntimeStats st = rt->stats();
    EXPECT_GT(st.evictions_dirty, 0u) << "written pages must have been written back and evicted";
    EXPECT_LE(st.budget_resident_bytes, (budget_pages + kBatch) * kPage);
    // Read back through the region (pages come back from the file)...
    size_t bad = 0;
    for (size_t page = 0; page < pages; ++page)
        bad += p[page * kPage + page % 100] != value(page, 2);
    EXPECT_EQ(bad, 0u);
    // ... and from the file itself after a sync.
    ASSERT_TRUE(rt->sync(p, f.size()));
    for (size_t page = 0; page < pages; ++page) {
        char c = 0;
        ASSERT_EQ(pread(f.fd(), &c, 1, off_t(page * kPage + page % 100)), 1);
        ASSERT_EQ(c, value(page, 2)) << "page " << page;
    }
}

TEST_P(Budget, EightWritersUnderHeavyEvictionNeverLoseAWrite)
{
    // Each thread owns one word of every page and counts in it, checking
    // that it reads back its last write, while the evictor writes back and
    // drops pages under a budget of an eighth of the region. Found a lost
    // write once: the evictor must clear a dirty bit before it re-protects,
    // as sync does (runtime/evictor.cc).
    Config c = budget_config(32, GetParam());
    c.eviction_batch_pages = 8;
    FAULTLINE_RUNTIME_OR_SKIP(rt, c);
    if (!rt->has_feature("wp_shmem") || !rt->has_feature("minor"))
        GTEST_SKIP() << "evicting written pages needs write-protect and minor faults on shared memory";
    const size_t pages = 256;
    TempFile f(pages * kPage, 12);
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    std::atomic<size_t> lost { 0 };
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            std::mt19937 rng(t);
            std::vector<uint64_t> last(pages);
            for (size_t page = 0; page < pages; ++page)
                memcpy(&last[page], f.contents().data() + page * kPage + t * 8, 8);
            for (int i = 0; i < 12000; ++i) {
                const size_t page = rng() % pages;
                auto* word = reinterpret_cast<volatile uint64_t*>(p + page * kPage) + t;
                if (*word != last[page]) {
                    ++lost;
                    last[page] = *word;
                }
                *word = ++last[page];
            }
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(lost.load(), 0u);
    EXPECT_GT(rt->stats().evictions_dirty, 0u);
}

TEST_P(Budget, UnmapWhileEvictionRuns)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, budget_config(128, GetParam()));
    TempFile f(2 * 1024 * 1024, 5);
    for (int round = 0; round < 8; ++round) {
        auto r = rt->map_file(f.fd(), { .length = f.size() });
        ASSERT_TRUE(r) << r.error().message();
        const char* p = static_cast<const char*>(*r);
        std::atomic<bool> stop { false };
        std::thread reader([&] {
            std::mt19937 rng(round);
            for (int i = 0; i < 400 && !stop; ++i) {
                const size_t at = (rng() % (f.size() / kPage)) * kPage;
                if (p[at] != f.contents()[at])
                    ADD_FAILURE() << "wrong byte at " << at;
            }
        });
        reader.join();
        ASSERT_TRUE(rt->unmap(*r, f.size()));
        stop = true;
    }
    EXPECT_LE(rt->stats().budget_resident_bytes, (128 + kBatch) * kPage);
}

INSTANTIATE_TEST_SUITE_P(Policies, Budget, ::testing::Values(EvictionPolicy::Clock, EvictionPolicy::Fifo),
    [](const auto& info) { return info.param == EvictionPolicy::Clock ? "Clock" : "Fifo"; });

// A writable store whose writes can be made to fail.
class FlakyStore : public Store {
public:
    explicit FlakyStore(size_t size)
        : bytes_(size, 'i')
    {
    }
    uint64_t size() noexcept override { return bytes_.size(); }
    bool writable() const noexcept override { return true; }
    int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        std::lock_guard g(lock_);
        const size_t n = std::min<size_t>(bytes, bytes_.size() - offset);
        memcpy(buffer, bytes_.data() + offset, n);
        return int64_t(n);
    }
    int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        if (fail_writes)
            return -EIO;
        std::lock_guard g(lock_);
        memcpy(bytes_.data() + offset, buffer, bytes);
        return int64_t(bytes);
    }
    char at(size_t offset)
    {
        std::lock_guard g(lock_);
        return bytes_[offset];
    }
    std::atomic<bool> fail_writes { false };

private:
    std::mutex lock_;
    std::vector<char> bytes_;
};

TEST(BudgetStore, AStoreWhoseWritesFailKeepsItsDirtyPagesAndEvictsTheClean)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    if (!rt->has_feature("wp_shmem") || !rt->has_feature("minor"))
        GTEST_SKIP() << "evicting written pages needs write-protect and minor faults on shared memory";
    auto store = std::make_shared<FlakyStore>(1024 * kPage);
    const size_t budget_pages = 64;
    auto r = rt->map_store(store, { .length = 1024 * kPage, .access = Access::ReadWrite, .budget = budget_pages * kPage });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    store->fail_writes = true;
    for (size_t page = 0; page < 32; ++page)
        p[page * kPage] = 'd'; // dirty, cannot be written back
    for (size_t page = 32; page < 1024; ++page)
        ASSERT_EQ(p[page * kPage], 'i'); // clean reads: evictable
    auto st = rt->region_stats(p);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->budget, budget_pages * kPage);
    // Without UFFDIO_CONTINUE_MODE_WP (before 6.4) a page mapped into a
    // writable region counts dirty at once: the clean reads are then only
    // the pages read ahead and never mapped, which may or may not be evicted.
    if (rt->has_feature("continue_wp")) {
        EXPECT_GT(st->evictions_clean, 0u);
    }
    EXPECT_EQ(st->evictions_dirty, 0u);
    EXPECT_GE(st->dirty_pages, 32u) << "failed write-backs leave the pages dirty";
    for (size_t page = 0; page < 32; ++page)
        ASSERT_EQ(p[page * kPage], 'd') << "a page whose write-back failed is never dropped";
    auto synced = rt->sync(p, 1024 * kPage);
    ASSERT_FALSE(synced);
    EXPECT_EQ(synced.error().code(), EIO);
    store->fail_writes = false;
    ASSERT_TRUE(rt->sync(p, 1024 * kPage));
    EXPECT_EQ(store->at(5 * kPage), 'd');
}

TEST(Budget, ABudgetOfOneBatchParksFaultsAndNeverHangs)
{
    // The smallest budget there is (one batch) and 8 threads faulting at
    // once: most faults find no room and park until the evictor frees some.
    Config c = budget_config(kBatch);
    FAULTLINE_RUNTIME_OR_SKIP(rt, c);
    TempFile f(1024 * kPage, 21);
    auto r = rt->map_file(f.fd(), { .length = f.size() });
    ASSERT_TRUE(r) << r.error().message();
    const char* p = static_cast<const char*>(*r);
    Watchdog dog("8 threads reading under a one-batch budget", 120);
    std::atomic<size_t> bad { 0 };
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            std::mt19937 rng(100 + t);
            for (int i = 0; i < 400; ++i) {
                const size_t at = (rng() % 1024) * kPage + rng() % kPage;
                bad += p[at] != f.contents()[at];
            }
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(bad.load(), 0u);
    const RuntimeStats st = rt->stats();
    EXPECT_LE(st.budget_resident_bytes, 2 * kBatch * kPage);
    EXPECT_GT(st.evictions_clean, 0u);
}

TEST(Budget, ARegionBudgetBoundsItsFileAndPrivateRegionsKeepTheirWrites)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    TempFile f(1024 * kPage, 8);
    const size_t budget_pages = 128;
    auto r = rt->map_file(f.fd(),
        { .length = f.size(), .access = Access::ReadWrite, .sharing = Sharing::Private, .budget = budget_pages * kPage });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    // Private writes are the region's own copies: never written to the file,
    // never evicted (the cache's pages go, the copies stay).
    for (size_t page = 0; page < 64; ++page)
        p[page * kPage + 1] = 'w';
    for (int pass = 0; pass < 2; ++pass)
        for (size_t page = 0; page < 1024; ++page)
            ASSERT_EQ(p[page * kPage + 2000], f.contents()[page * kPage + 2000]);
    auto st = rt->region_stats(p);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->budget, budget_pages * kPage);
    EXPECT_GT(st->evictions_clean, 0u);
    EXPECT_LE(st->cached_pages, budget_pages + 64);
    for (size_t page = 0; page < 64; ++page)
        ASSERT_EQ(p[page * kPage + 1], 'w') << "a private copy survives eviction of the file's page";
    char c = 0;
    ASSERT_EQ(pread(f.fd(), &c, 1, off_t(1)), 1);
    EXPECT_EQ(c, f.contents()[1]) << "private writes never reach the file";
}

TEST(Budget, WritableSharedMappingsNeedFaultTrackingUnderABudget)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, budget_config(256));
    TempFile f(64 * kPage, 2);
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite });
    if (rt->has_feature("wp_shmem") && rt->has_feature("minor")) {
        ASSERT_TRUE(r) << r.error().message();
        return;
    }
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EOPNOTSUPP);
    EXPECT_EQ(rt->stats().region_count, 0u);
    // Read-only mappings are evictable without write tracking...
    auto ro = rt->map_file(f.fd(), { .length = f.size() });
    ASSERT_TRUE(ro);
    EXPECT_EQ(static_cast<volatile char*>(*ro)[5], f.contents()[5]);
    // ... and cannot be made writable later either (nothing changes).
    auto p = rt->protect(*ro, f.size(), Access::ReadWrite);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), EOPNOTSUPP);
    auto st = rt->region_stats(*ro);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->access, Access::Read);
}

TEST(Budget, AFileMappedWithoutABudgetFirstRefusesAWritableBudgetedView)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    if (!rt->has_feature("wp_async"))
        GTEST_SKIP() << "only asynchronous write tracking conflicts with a later budget";
    TempFile f(256 * kPage, 4);
    auto a = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite });
    ASSERT_TRUE(a);
    auto b = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite, .budget = 128 * kPage });
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().code(), EOPNOTSUPP);
}

TEST(Budget, AForkChildOfABudgetedRuntimeEndsCleanly)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, budget_config(64));
    TempFile f(1024 * kPage, 6);
    auto r = rt->map_file(f.fd(), { .length = f.size() });
    ASSERT_TRUE(r);
    const char* p = static_cast<const char*>(*r);
    for (size_t page = 0; page < 1024; page += 3)
        ASSERT_EQ(p[page * kPage], f.contents()[page * kPage]);
    ForkedChild child([&](ForkedChild&) {
        // The child's copy of the runtime is inert: destroying it must not
        // join the parent's evictor or post to its faults.
        rt.reset();
    },
        30);
    ASSERT_TRUE(child.started());
    auto out = child.reap(30);
    EXPECT_TRUE(out.exited_zero()) << out.describe();
    for (size_t page = 0; page < 1024; page += 5)
        ASSERT_EQ(p[page * kPage], f.contents()[page * kPage]) << "the parent keeps serving under its budget";
}

TEST(BudgetConfig, BadBudgetsAreRefused)
{
    auto code = [](Config c) {
        auto rt = Runtime::create(c);
        return rt ? 0 : rt.error().code();
    };
    Config c;
    c.memory_budget = 4 * kPage; // smaller than one batch (64 pages)
    EXPECT_EQ(code(c), EINVAL);
    c = Config {};
    c.eviction_batch_pages = 0;
    EXPECT_EQ(code(c), EINVAL);
    c = Config {};
    c.budget_low_percent = 95;
    c.budget_high_percent = 90;
    EXPECT_EQ(code(c), EINVAL);
    c = Config {};
    c.budget_high_percent = 101;
    EXPECT_EQ(code(c), EINVAL);
    c = Config {};
    c.eviction_policy = EvictionPolicy(9);
    EXPECT_EQ(code(c), EINVAL);

    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    TempFile f(64 * kPage, 1);
    auto r = rt->map_file(f.fd(), { .length = f.size(), .budget = 2 * kPage });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EINVAL) << "a region budget smaller than one batch";
    EXPECT_EQ(rt->stats().region_count, 0u);
}

} // namespace
} // namespace faultline::testing
