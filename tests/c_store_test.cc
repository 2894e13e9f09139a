// C-callback stores (faultline_map_store): bytes come from the callbacks
// exactly, writes reach the store on faultline_sync, a failing read is SIGBUS
// in the faulting thread, release runs exactly once (after unmap or destroy,
// never for a failed map), and bad input returns the documented errno.
#include "support/guarded_access.h"

#include <faultline/faultline.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace {

constexpr size_t kPage = 4096;

char pattern(uint64_t offset) { return char((offset * 2654435761u) >> 11); }

// What a C program would keep behind its ctx pointer.
struct MemoryCtx {
    std::mutex lock;
    std::vector<char> bytes;
    std::atomic<int> reads { 0 }, writes { 0 }, flushes { 0 }, releases { 0 };
    std::atomic<int> fail_read { 0 }; // -errno to return, 0 = work
    std::atomic<int> fail_write { 0 };

    explicit MemoryCtx(size_t size)
        : bytes(size)
    {
        for (size_t i = 0; i < size; ++i)
            bytes[i] = pattern(i);
    }
    char at(size_t offset)
    {
        std::lock_guard g(lock);
        return bytes[offset];
    }
};

extern "C" uint64_t mem_size(void* ctx) { return static_cast<MemoryCtx*>(ctx)->bytes.size(); }

extern "C" int64_t mem_read(void* ctx, void* buffer, size_t n, uint64_t offset)
{
    auto* m = static_cast<MemoryCtx*>(ctx);
    m->reads++;
    if (int e = m->fail_read.load())
        return e;
    std::lock_guard g(m->lock);
    if (offset >= m->bytes.size())
        return 0;
    const size_t k = std::min(n, m->bytes.size() - size_t(offset));
    memcpy(buffer, m->bytes.data() + offset, k);
    return int64_t(k);
}

extern "C" int64_t mem_write(void* ctx, const void* buffer, size_t n, uint64_t offset)
{
    auto* m = static_cast<MemoryCtx*>(ctx);
    m->writes++;
    if (int e = m->fail_write.load())
        return e;
    std::lock_guard g(m->lock);
    if (offset + n > m->bytes.size())
        return -EINVAL; // the runtime never writes past size
    memcpy(m->bytes.data() + offset, buffer, n);
    return int64_t(n);
}

extern "C" int mem_flush(void* ctx)
{
    static_cast<MemoryCtx*>(ctx)->flushes++;
    return 0;
}

extern "C" void mem_release(void* ctx) { static_cast<MemoryCtx*>(ctx)->releases++; }

constexpr faultline_store_ops kReadOnly { mem_size, mem_read, nullptr, nullptr, mem_release };
constexpr faultline_store_ops kReadWrite { mem_size, mem_read, mem_write, mem_flush, mem_release };
constexpr unsigned kRW = FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE;

// Destroys the runtime when a test returns early (a failed ASSERT).
// Declared after the test's store contexts, it runs before they go, so the
// runtime never calls into a context that is gone — a failed assertion once
// became a crash of the whole test binary that way (its write-back at exit
// called a freed context).
struct DestroyLater {
    faultline_runtime_t& rt;
    ~DestroyLater()
    {
        if (rt)
            faultline_destroy(rt);
    }
    int now()
    {
        const int rc = faultline_destroy(rt);
        rt = 0;
        return rc;
    }
};

#define CREATE_OR_SKIP(rt)                                                                \
    faultline_runtime_t rt = 0;                                                           \
    if (int rc_ = faultline_create(nullptr, &rt); rc_ < 0)                                \
    GTEST_SKIP() << "userfaultfd unavailable: " << faultline_last_error()

TEST(CStore, BytesComeFromTheCallbacksExactly)
{
    CREATE_OR_SKIP(rt);
    const size_t size = 3 * 1024 * 1024 + 100; // a short last page
    MemoryCtx ctx(size);
    DestroyLater later { rt };
    void* p = nullptr;
    ASSERT_EQ(faultline_map_store(rt, &kReadOnly, &ctx, 0, size, FAULTLINE_ACCESS_READ, "c-store", &p), 0)
        << faultline_last_error();
    const char* c = static_cast<const char*>(p);
    for (size_t page = (size + kPage - 1) / kPage; page-- > 0;)
        ASSERT_EQ(c[page * kPage], pattern(page * kPage)) << "page " << page;
    size_t bad = 0;
    for (size_t i = 0; i < size; ++i)
        bad += c[i] != pattern(i);
    EXPECT_EQ(bad, 0u);
    for (size_t i = size; i % kPage; ++i)
        ASSERT_EQ(c[i], 0) << "past the store's end the last page reads zeros";
    EXPECT_GT(ctx.reads.load(), 0);
    faultline_region_stats st {};
    ASSERT_EQ(faultline_get_region_stats(rt, p, &st), 0);
    EXPECT_GE(st.file_bytes_read, size);
    // An offset: the region's first byte is the store's byte there.
    void* q = nullptr;
    ASSERT_EQ(faultline_map_store(rt, &kReadOnly, &ctx, int64_t(16 * kPage), 4 * kPage, FAULTLINE_ACCESS_READ, nullptr, &q), 0);
    EXPECT_EQ(static_cast<volatile char*>(q)[5], pattern(16 * kPage + 5));
    EXPECT_EQ(faultline_unmap(rt, q, 4 * kPage), 0);
    EXPECT_EQ(faultline_unmap(rt, p, (size + kPage - 1) / kPage * kPage), 0);
    EXPECT_EQ(later.now(), 0);
    EXPECT_EQ(ctx.releases.load(), 2) << "one release per successful map";
}

TEST(CStore, WritesReachTheStoreOnSync)
{
    CREATE_OR_SKIP(rt);
    const size_t size = 32 * kPage;
    MemoryCtx ctx(size);
    DestroyLater later { rt };
    void* p = nullptr;
    ASSERT_EQ(faultline_map_store(rt, &kReadWrite, &ctx, 0, size, kRW, "rw", &p), 0) << faultline_last_error();
    char* c = static_cast<char*>(p);
    for (size_t page = 3; page < 9; ++page)
        memset(c + page * kPage + 7, 'a' + int(page), 100);
    EXPECT_EQ(ctx.at(3 * kPage + 7), pattern(3 * kPage + 7)) << "nothing reaches the store before a sync";
    ASSERT_EQ(faultline_sync(rt, p, size, FAULTLINE_SYNC), 0) << faultline_last_error();
    for (size_t page = 3; page < 9; ++page) {
        EXPECT_EQ(ctx.at(page * kPage + 6), pattern(page * kPage + 6));
        for (size_t i = 7; i < 107; ++i)
            ASSERT_EQ(ctx.at(page * kPage + i), char('a' + page));
        EXPECT_EQ(ctx.at(page * kPage + 107), pattern(page * kPage + 107));
    }
    EXPECT_GE(ctx.writes.load(), 1);
    EXPECT_GE(ctx.flushes.load(), 1) << "FAULTLINE_SYNC makes the writes durable through flush";
    // A failing write: the sync reports it, the page stays dirty and resident,
    // and the next sync writes it.
    c[20 * kPage] = 'Z';
    ctx.fail_write = -ENOSPC;
    EXPECT_EQ(faultline_sync(rt, p, size, FAULTLINE_SYNC), -ENOSPC);
    EXPECT_NE(ctx.at(20 * kPage), 'Z');
    EXPECT_EQ(c[20 * kPage], 'Z');
    ctx.fail_write = 0;
    ASSERT_EQ(faultline_sync(rt, p, size, FAULTLINE_SYNC), 0);
    EXPECT_EQ(ctx.at(20 * kPage), 'Z');
    // Unmap writes back too, then releases.
    c[30 * kPage + 1] = 'U';
    EXPECT_EQ(ctx.releases.load(), 0);
    ASSERT_EQ(faultline_unmap(rt, p, size), 0);
    EXPECT_EQ(ctx.at(30 * kPage + 1), 'U');
    EXPECT_EQ(later.now(), 0);
    EXPECT_EQ(ctx.releases.load(), 1);
}

TEST(CStore, AFailingReadIsSigbusAndTheRuntimeKeepsServing)
{
    CREATE_OR_SKIP(rt);
    MemoryCtx bad(16 * kPage), good(16 * kPage);
    DestroyLater later { rt };
    bad.fail_read = -EIO;
    void *pb = nullptr, *pg = nullptr;
    ASSERT_EQ(faultline_map_store(rt, &kReadOnly, &bad, 0, 16 * kPage, FAULTLINE_ACCESS_READ, "bad", &pb), 0);
    ASSERT_EQ(faultline_map_store(rt, &kReadOnly, &good, 0, 16 * kPage, FAULTLINE_ACCESS_READ, "good", &pg), 0);
    volatile char* b = static_cast<char*>(pb);
    volatile char* g = static_cast<char*>(pg);
    int sig = 0;
    std::thread t([&] { sig = faultline::testing::guarded_access([&] { (void)b[2 * kPage]; }); });
    for (size_t page = 0; page < 16; ++page)
        EXPECT_EQ(g[page * kPage], pattern(page * kPage));
    t.join();
    EXPECT_EQ(sig, SIGBUS);
    EXPECT_GE(bad.reads.load(), 1);
    bad.fail_read = 0;
    EXPECT_EQ(b[9 * kPage], pattern(9 * kPage)) << "another page reads once the store works";
    EXPECT_EQ(later.now(), 0);
    EXPECT_EQ(bad.releases.load(), 1);
    EXPECT_EQ(good.releases.load(), 1);
}

extern "C" int64_t overlong_read(void* ctx, void* buffer, size_t n, uint64_t offset)
{
    (void)ctx, (void)offset;
    memset(buffer, 1, n);
    return int64_t(n + kPage);
}

TEST(CStore, AReadClaimingMoreThanAskedIsSigbus)
{
    CREATE_OR_SKIP(rt);
    MemoryCtx ctx(8 * kPage);
    DestroyLater later { rt };
    const faultline_store_ops ops { mem_size, overlong_read, nullptr, nullptr, mem_release };
    void* p = nullptr;
    ASSERT_EQ(faultline_map_store(rt, &ops, &ctx, 0, 8 * kPage, FAULTLINE_ACCESS_READ, nullptr, &p), 0);
    volatile char* c = static_cast<char*>(p);
    EXPECT_EQ(faultline::testing::guarded_access([&] { (void)c[0]; }), SIGBUS);
    EXPECT_EQ(later.now(), 0);
    EXPECT_EQ(ctx.releases.load(), 1);
}

TEST(CStore, ReleaseRunsExactlyOnceAfterUnmapOrDestroy)
{
    CREATE_OR_SKIP(rt);
    MemoryCtx unmapped(8 * kPage), kept(8 * kPage);
    DestroyLater later { rt };
    void *a = nullptr, *b = nullptr;
    ASSERT_EQ(faultline_map_store(rt, &kReadWrite, &unmapped, 0, 8 * kPage, kRW, nullptr, &a), 0);
    ASSERT_EQ(faultline_map_store(rt, &kReadWrite, &kept, 0, 8 * kPage, kRW, nullptr, &b), 0);
    static_cast<char*>(a)[0] = 'a';
    static_cast<char*>(b)[kPage] = 'b';
    // Unmapping part of the region keeps the store in use.
    ASSERT_EQ(faultline_unmap(rt, static_cast<char*>(a) + 4 * kPage, 4 * kPage), 0);
    EXPECT_EQ(unmapped.releases.load(), 0);
    ASSERT_EQ(faultline_unmap(rt, a, 4 * kPage), 0);
    // The runtime lets go of a store once no region maps it (here, at once;
    // at the latest when it is destroyed) — and never twice.
    EXPECT_LE(unmapped.releases.load(), 1);
    EXPECT_EQ(kept.releases.load(), 0) << "a store still mapped is not released";
    EXPECT_EQ(later.now(), 0);
    EXPECT_EQ(unmapped.releases.load(), 1);
    EXPECT_EQ(kept.releases.load(), 1);
    EXPECT_EQ(unmapped.at(0), 'a') << "written back before release";
    EXPECT_EQ(kept.at(kPage), 'b') << "destroy writes back before release";
}

TEST(CStore, BadInputReturnsTheErrnoAndNeverReleases)
{
    CREATE_OR_SKIP(rt);
    MemoryCtx ctx(8 * kPage);
    DestroyLater later { rt };
    void* p = nullptr;
    auto map = [&](const faultline_store_ops* ops, int64_t offset, size_t length, unsigned access, void** out) {
        return faultline_map_store(rt, ops, &ctx, offset, length, access, nullptr, out);
    };
    EXPECT_EQ(map(nullptr, 0, kPage, FAULTLINE_ACCESS_READ, &p), -EINVAL);
    EXPECT_NE(std::string(faultline_last_error()).find("ops"), std::string::npos);
    const faultline_store_ops no_size { nullptr, mem_read, nullptr, nullptr, mem_release };
    const faultline_store_ops no_read { mem_size, nullptr, nullptr, nullptr, mem_release };
    EXPECT_EQ(map(&no_size, 0, kPage, FAULTLINE_ACCESS_READ, &p), -EINVAL);
    EXPECT_EQ(map(&no_read, 0, kPage, FAULTLINE_ACCESS_READ, &p), -EINVAL);
    EXPECT_EQ(map(&kReadOnly, 0, kPage, FAULTLINE_ACCESS_READ, nullptr), -EINVAL);
    EXPECT_EQ(map(&kReadOnly, 0, kPage, 0x10, &p), -EINVAL);
    EXPECT_EQ(map(&kReadOnly, 0, 0, FAULTLINE_ACCESS_READ, &p), -EINVAL);
    EXPECT_EQ(map(&kReadOnly, 100, kPage, FAULTLINE_ACCESS_READ, &p), -EINVAL);
    EXPECT_EQ(map(&kReadOnly, -int64_t(kPage), kPage, FAULTLINE_ACCESS_READ, &p), -EINVAL);
    EXPECT_EQ(map(&kReadOnly, 0, SIZE_MAX - 10, FAULTLINE_ACCESS_READ, &p), -EOVERFLOW);
    EXPECT_EQ(map(&kReadOnly, 0, kPage, kRW, &p), -EACCES) << "write access needs a write callback";
    EXPECT_EQ(faultline_map_store(rt + 1000, &kReadOnly, &ctx, 0, kPage, FAULTLINE_ACCESS_READ, nullptr, &p), -EBADF);
    EXPECT_EQ(later.now(), 0);
    EXPECT_EQ(faultline_map_store(rt, &kReadOnly, &ctx, 0, kPage, FAULTLINE_ACCESS_READ, nullptr, &p), -EBADF);
    EXPECT_EQ(ctx.releases.load(), 0) << "a failed map leaves ctx with the caller";
    EXPECT_EQ(ctx.reads.load(), 0);
}

TEST(CStore, ReadOnlyStoreCannotBeMadeWritableLater)
{
    CREATE_OR_SKIP(rt);
    MemoryCtx ctx(8 * kPage);
    DestroyLater later { rt };
    void* p = nullptr;
    ASSERT_EQ(faultline_map_store(rt, &kReadOnly, &ctx, 0, 8 * kPage, FAULTLINE_ACCESS_READ, nullptr, &p), 0);
    EXPECT_EQ(faultline_protect(rt, p, 8 * kPage, kRW), -EACCES);
    volatile char* c = static_cast<char*>(p);
    EXPECT_EQ(faultline::testing::guarded_access([&] { c[0] = 1; }), SIGSEGV);
    EXPECT_EQ(later.now(), 0);
    EXPECT_EQ(ctx.releases.load(), 1);
}

} // namespace
