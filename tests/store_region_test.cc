// Store regions (issue: budget, eviction and stores): a user's Store behind a
// region — bytes generated on demand, writes reaching the store on sync and
// unmap, one cache per store object, a slow store that blocks nobody but its
// own faults, failing reads (SIGBUS in the faulting thread only) and writes
// (the pages stay dirty, sync returns the errno), and bad input.
#include "fork_support.h"
#include "support/guarded_access.h"
#include "test_support.h"

#include <faultline/store.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace faultline::testing {
namespace {

// The byte a generated store holds at `offset`.
char pattern(uint64_t offset) { return char((offset * 2654435761u) >> 13); }

// A store in memory: bytes start as pattern(offset); writes are kept. Every
// call is counted; reads and writes can be made to fail, and reads to wait.
class MemoryStore : public Store {
public:
    explicit MemoryStore(size_t size, bool writable = true)
        : bytes_(size)
        , writable_(writable)
    {
        for (size_t i = 0; i < size; ++i)
            bytes_[i] = pattern(i);
    }
    uint64_t size() noexcept override { return bytes_.size(); }
    bool writable() const noexcept override { return writable_; }
    int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        {
            std::unique_lock g(lock_);
            reader_threads_.push_back(std::this_thread::get_id());
            gate_.wait(g, [&] { return open_; });
        }
        reads_.fetch_add(1);
        if (fail_reads_.load())
            return -EIO;
        std::lock_guard g(lock_);
        if (offset >= bytes_.size())
            return 0;
        const size_t n = std::min<size_t>(bytes, bytes_.size() - offset);
        memcpy(buffer, bytes_.data() + offset, n);
        return int64_t(n);
    }
    int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        writes_.fetch_add(1);
        if (fail_writes_.load())
            return -ENOSPC;
        std::lock_guard g(lock_);
        if (offset + bytes > bytes_.size())
            return -EINVAL; // the runtime never writes past size()
        memcpy(bytes_.data() + offset, buffer, bytes);
        pages_written_ += bytes / kPage + (bytes % kPage != 0);
        return int64_t(bytes);
    }
    int flush() noexcept override
    {
        flushes_.fetch_add(1);
        return 0;
    }

    char at(size_t offset)
    {
        std::lock_guard g(lock_);
        return bytes_[offset];
    }
    void close_gate()
    {
        std::lock_guard g(lock_);
        open_ = false;
    }
    void open_gate()
    {
        {
            std::lock_guard g(lock_);
            open_ = true;
        }
        gate_.notify_all();
    }
    size_t pages_written()
    {
        std::lock_guard g(lock_);
        return pages_written_;
    }
    std::vector<std::thread::id> reader_threads()
    {
        std::lock_guard g(lock_);
        return reader_threads_;
    }

    std::atomic<uint64_t> reads_ { 0 }, writes_ { 0 }, flushes_ { 0 };
    std::atomic<bool> fail_reads_ { false }, fail_writes_ { false };

private:
    std::mutex lock_;
    std::condition_variable gate_;
    bool open_ = true;
    std::vector<char> bytes_;
    bool writable_;
    size_t pages_written_ = 0;
    std::vector<std::thread::id> reader_threads_;
};

TEST(StoreRegion, PagesComeFromTheStoreByteForByte)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    const size_t size = 3 * 1024 * 1024 + 100; // a short last page
    auto store = std::make_shared<MemoryStore>(size, false);
    auto r = rt->map_store(store, { .length = size, .name = "generated" });
    ASSERT_TRUE(r) << r.error().message();
    const char* p = static_cast<const char*>(*r);
    // Backwards (isolated faults), then every byte.
    for (size_t page = (size + kPage - 1) / kPage; page-- > 0;)
        ASSERT_EQ(p[page * kPage], pattern(page * kPage));
    size_t bad = 0;
    for (size_t i = 0; i < size; ++i)
        bad += p[i] != pattern(i);
    EXPECT_EQ(bad, 0u);
    for (size_t i = size; i % kPage; ++i)
        ASSERT_EQ(p[i], 0) << "bytes past the store's end in its last page read zero";
    auto st = rt->region_stats(*r);
    ASSERT_TRUE(st);
    EXPECT_STREQ(st->object_kind, "store");
    EXPECT_GT(st->inode_faults, 0u);
    EXPECT_GE(st->file_bytes_read, size);
    EXPECT_GT(store->reads_.load(), 0u);
    // Reads run on the store's threads, never the caller's.
    for (auto id : store->reader_threads())
        EXPECT_NE(id, std::this_thread::get_id());
    EXPECT_TRUE(rt->unmap(*r, (size + kPage - 1) / kPage * kPage));
}

TEST(StoreRegion, PastTheEndOfTheStoreIsSigbus)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    auto store = std::make_shared<MemoryStore>(2 * kPage, false);
    auto r = rt->map_store(store, { .length = 4 * kPage });
    ASSERT_TRUE(r) << r.error().message();
    volatile char* p = static_cast<char*>(*r);
    EXPECT_EQ(p[kPage], pattern(kPage));
    EXPECT_EQ(guarded_access([&] { (void)p[3 * kPage]; }), SIGBUS);
    EXPECT_EQ(p[0], pattern(0)) << "the runtime keeps serving";
}

TEST(StoreRegion, WritesReachTheStoreOnSyncAndUnmapAndRegionsShareOneCache)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    const size_t size = 64 * kPage;
    auto store = std::make_shared<MemoryStore>(size);
    auto a = rt->map_store(store, { .length = size, .access = Access::ReadWrite, .name = "a" });
    ASSERT_TRUE(a) << a.error().message();
    // A second region of the same store, at an offset: one cache, so each
    // sees the other's writes at once.
    auto b = rt->map_store(store, { .length = 32 * kPage, .offset = int64_t(16 * kPage), .access = Access::ReadWrite });
    ASSERT_TRUE(b) << b.error().message();
    char* pa = static_cast<char*>(*a);
    char* pb = static_cast<char*>(*b);
    pa[20 * kPage + 5] = 'A';
    EXPECT_EQ(pb[4 * kPage + 5], 'A');
    pb[10 * kPage + 9] = 'B';
    EXPECT_EQ(pa[26 * kPage + 9], 'B');
    for (size_t page = 40; page < 48; ++page)
        pa[page * kPage] = char('a' + page % 26);
    EXPECT_NE(store->at(20 * kPage + 5), 'A') << "nothing reaches the store before a sync";
    ASSERT_TRUE(rt->sync(pa, size, SyncFlags::Sync));
    EXPECT_EQ(store->at(20 * kPage + 5), 'A');
    EXPECT_EQ(store->at(26 * kPage + 9), 'B');
    for (size_t page = 40; page < 48; ++page)
        EXPECT_EQ(store->at(page * kPage), char('a' + page % 26));
    // Exactly the dirty pages were written: 2 + 8 (where writes are tracked
    // page by page: write-protect and minor faults, as for files, and
    // pages mapped write-protected — without UFFDIO_CONTINUE_MODE_WP every
    // page mapped beside a written one counts dirty too).
    if (rt->has_feature("minor") && (rt->has_feature("wp_shmem") || rt->has_feature("wp_async"))
        && rt->has_feature("continue_wp")) {
        EXPECT_EQ(store->pages_written(), 10u);
    }
    EXPECT_GE(store->flushes_.load(), 1u);
    // Unmap writes back too.
    pa[1 * kPage] = 'U';
    ASSERT_TRUE(rt->unmap(pb, 32 * kPage));
    ASSERT_TRUE(rt->unmap(pa, size));
    EXPECT_EQ(store->at(1 * kPage), 'U');
}

TEST(StoreRegion, AFailingReadIsSigbusInTheFaultingThreadOnly)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    auto bad = std::make_shared<MemoryStore>(16 * kPage, false);
    auto good = std::make_shared<MemoryStore>(16 * kPage, false);
    bad->fail_reads_ = true;
    auto rb = rt->map_store(bad, { .length = 16 * kPage });
    auto rg = rt->map_store(good, { .length = 16 * kPage });
    ASSERT_TRUE(rb && rg);
    volatile char* pb = static_cast<char*>(*rb);
    volatile char* pg = static_cast<char*>(*rg);
    int sig = 0;
    std::thread t([&] { sig = guarded_access([&] { (void)pb[3 * kPage]; }); });
    for (size_t page = 0; page < 16; ++page)
        EXPECT_EQ(pg[page * kPage], pattern(page * kPage));
    t.join();
    EXPECT_EQ(sig, SIGBUS);
    // The failed page is read again on the next touch, once the store works.
    bad->fail_reads_ = false;
    EXPECT_EQ(pb[5 * kPage], pattern(5 * kPage));
    auto st = rt->region_stats(*rb);
    ASSERT_TRUE(st);
    EXPECT_GE(st->file_read_errors, 1u);
}

TEST(StoreRegion, AFailingWriteKeepsThePagesDirtyAndSyncReportsIt)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    auto store = std::make_shared<MemoryStore>(8 * kPage);
    auto r = rt->map_store(store, { .length = 8 * kPage, .access = Access::ReadWrite });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    p[2 * kPage] = 'X';
    store->fail_writes_ = true;
    auto synced = rt->sync(p, 8 * kPage);
    ASSERT_FALSE(synced);
    EXPECT_EQ(synced.error().code(), ENOSPC);
    EXPECT_NE(store->at(2 * kPage), 'X');
    EXPECT_EQ(p[2 * kPage], 'X') << "the page stays resident with its data";
    auto st = rt->region_stats(p);
    ASSERT_TRUE(st);
    EXPECT_GE(st->dirty_pages, 1u);
    store->fail_writes_ = false;
    ASSERT_TRUE(rt->sync(p, 8 * kPage));
    EXPECT_EQ(store->at(2 * kPage), 'X');
}

TEST(StoreRegion, ASlowStoreBlocksOnlyTheFaultsWaitingForIt)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    auto slow = std::make_shared<MemoryStore>(16 * kPage, false);
    auto fast = std::make_shared<MemoryStore>(16 * kPage, false);
    auto rs = rt->map_store(slow, { .length = 16 * kPage });
    auto rf = rt->map_store(fast, { .length = 16 * kPage });
    auto anon = rt->map_anonymous({ .size = 64 * kPage });
    ASSERT_TRUE(rs && rf && anon);
    slow->close_gate();
    std::atomic<bool> done { false };
    char got = 0;
    std::thread t([&] {
        got = static_cast<volatile char*>(*rs)[0];
        done = true;
    });
    // While the slow store holds its read, every other fault is served.
    for (size_t page = 0; page < 16; ++page)
        ASSERT_EQ(static_cast<volatile char*>(*rf)[page * kPage], pattern(page * kPage));
    for (size_t page = 0; page < 64; ++page)
        static_cast<volatile char*>(*anon)[page * kPage] = 1;
    EXPECT_FALSE(done.load());
    slow->open_gate();
    t.join();
    EXPECT_EQ(got, pattern(0));
}

TEST(StoreRegion, BadInput)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    auto ro = std::make_shared<MemoryStore>(8 * kPage, false);
    auto code = [](const Result<void*>& r) { return r ? 0 : r.error().code(); };
    EXPECT_EQ(code(rt->map_store(nullptr, { .length = kPage })), EINVAL);
    EXPECT_EQ(code(rt->map_store(ro, { .length = 0 })), EINVAL);
    EXPECT_EQ(code(rt->map_store(ro, { .length = kPage, .offset = 100 })), EINVAL);
    EXPECT_EQ(code(rt->map_store(ro, { .length = kPage, .offset = -int64_t(kPage) })), EINVAL);
    EXPECT_EQ(code(rt->map_store(ro, { .length = SIZE_MAX - 10 })), EOVERFLOW);
    EXPECT_EQ(code(rt->map_store(ro, { .length = kPage, .access = Access::ReadWrite })), EACCES)
        << "write access to a store that cannot write";
    EXPECT_EQ(code(rt->map_store(ro, { .length = kPage, .readahead_min_pages = 8, .readahead_max_pages = 4 })), EINVAL);
    EXPECT_EQ(code(rt->map_store(ro, { .length = kPage, .threads = 100000 })), EINVAL);
    EXPECT_EQ(rt->stats().region_count, 0u) << "nothing half-done";
    // A read-only store region cannot be made writable later either.
    auto r = rt->map_store(ro, { .length = 8 * kPage });
    ASSERT_TRUE(r);
    auto p = rt->protect(*r, 8 * kPage, Access::ReadWrite);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), EACCES);
}

TEST(StoreRegion, TheStoreLivesAsLongAsItsRegions)
{
    std::weak_ptr<MemoryStore> weak;
    {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
        auto store = std::make_shared<MemoryStore>(8 * kPage, false);
        weak = store;
        auto r = rt->map_store(std::move(store), { .length = 8 * kPage });
        ASSERT_TRUE(r);
        EXPECT_EQ(static_cast<volatile char*>(*r)[kPage], pattern(kPage));
        EXPECT_FALSE(weak.expired()) << "the runtime holds the store while a region maps it";
        ASSERT_TRUE(rt->unmap(*r, 8 * kPage));
    }
    EXPECT_TRUE(weak.expired()) << "released once no region maps it";
}

TEST(StoreRegion, AForkChildOfARuntimeWithAStoreEndsCleanly)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    auto store = std::make_shared<MemoryStore>(64 * kPage, false);
    auto r = rt->map_store(store, { .length = 64 * kPage });
    ASSERT_TRUE(r);
    const volatile char* p = static_cast<char*>(*r);
    EXPECT_EQ(p[kPage], pattern(kPage));
    // The store's threads wait on their condition variable in the parent;
    // the child's copy of the runtime must neither join nor wait for them.
    ForkedChild child([&](ForkedChild&) { rt.reset(); }, 30);
    ASSERT_TRUE(child.started());
    auto out = child.reap(30);
    EXPECT_TRUE(out.exited_zero()) << out.describe();
    EXPECT_EQ(p[9 * kPage], pattern(9 * kPage)) << "the parent keeps reading its store";
}

} // namespace
} // namespace faultline::testing
