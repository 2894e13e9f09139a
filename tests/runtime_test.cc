// Runtime: creation, mapping, unmapping, protection, commit accounting and
// every documented errno for bad input.
#include "test_support.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

using namespace faultline;
using faultline::testing::kPage;

namespace {

char* map(Runtime& rt, size_t size, Access access = Access::ReadWrite, RegionFlags flags = RegionFlags::None)
{
    auto r = rt.map_anonymous({ .size = size, .access = access, .flags = flags });
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? static_cast<char*>(*r) : nullptr;
}

int map_errno(Runtime& rt, const MapOptions& o)
{
    auto r = rt.map_anonymous(o);
    return r ? 0 : r.error().code();
}

} // namespace

TEST(Runtime, CreatesAndReportsArena)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .arena_size = size_t(1) << 30 });
    EXPECT_NE(rt->arena_base(), nullptr);
    EXPECT_EQ(rt->arena_size(), size_t(1) << 30);
    EXPECT_EQ(uintptr_t(rt->arena_base()) % (2 << 20), 0u);
    EXPECT_EQ(rt->stats().region_count, 0u);
    // handler_threads = 0 means "two on a multi-CPU machine".
    EXPECT_EQ(rt->config().handler_threads, sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 2u : 1u);
}

TEST(Runtime, RejectsBadConfig)
{
    auto create_errno = [](Config c) {
        auto rt = Runtime::create(std::move(c));
        return rt ? 0 : rt.error().code();
    };
    EXPECT_EQ(create_errno({ .arena_size = 0 }), EINVAL);
    EXPECT_EQ(create_errno({ .arena_size = 12345 }), EINVAL);
    EXPECT_EQ(create_errno({ .handler_threads = 65 }), EINVAL);
    EXPECT_EQ(create_errno({ .fault_around_pages = 0 }), EINVAL);
    EXPECT_EQ(create_errno({ .fault_around_pages = 100000 }), EINVAL);
    EXPECT_EQ(create_errno({ .handler_spin_us = 2000000 }), EINVAL);
}

TEST(Runtime, SpinningHandlersServeAndStop)
{
    for (int i = 0; i < 3; ++i) {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .handler_threads = 2, .fault_around_pages = 1, .handler_spin_us = 500 });
        auto r = rt->map_anonymous({ .size = 256 * kPage });
        ASSERT_TRUE(r);
        auto* p = static_cast<char*>(*r);
        for (size_t off = 0; off < 256 * kPage; off += kPage)
            p[off] = char(off / kPage);
        for (size_t off = 0; off < 256 * kPage; off += kPage)
            ASSERT_EQ(p[off], char(off / kPage));
        EXPECT_EQ(rt->stats().pages_installed, 256u);
    } // destruction must stop spinning threads promptly
}

TEST(Runtime, MapTouchUnmap)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t size = 256 * kPage;
    char* p = map(*rt, size);
    ASSERT_NE(p, nullptr);
    EXPECT_GE(uintptr_t(p), uintptr_t(rt->arena_base()));
    for (size_t off = 0; off < size; off += kPage)
        EXPECT_EQ(p[off], 0) << off;
    for (size_t off = 0; off < size; off += kPage)
        p[off + 7] = char(off / kPage);
    for (size_t off = 0; off < size; off += kPage)
        ASSERT_EQ(p[off + 7], char(off / kPage));
    EXPECT_GT(rt->stats().fault_events, 0u);
    ASSERT_TRUE(rt->unmap(p, size));
    EXPECT_EQ(rt->stats().region_count, 0u);
}

TEST(Runtime, ReusedRangeIsZeroAgain)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .arena_size = 64 * kPage });
    char* p = map(*rt, 16 * kPage);
    memset(p, 0xab, 16 * kPage);
    ASSERT_TRUE(rt->unmap(p, 16 * kPage));
    auto again = rt->map_anonymous({ .size = 16 * kPage, .address = p });
    ASSERT_TRUE(again) << again.error().message();
    ASSERT_EQ(*again, p);
    for (size_t i = 0; i < 16 * kPage; ++i)
        ASSERT_EQ(p[i], 0) << "stale byte at " << i;
}

TEST(Runtime, PlaceSpecificallyAndOverlap)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* base = static_cast<char*>(rt->arena_base()) + 1024 * kPage;
    auto a = rt->map_anonymous({ .size = 8 * kPage, .address = base });
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, base);
    EXPECT_EQ(map_errno(*rt, { .size = 8 * kPage, .address = base + 4 * kPage }), EEXIST);
    EXPECT_EQ(map_errno(*rt, { .size = 8 * kPage, .address = base - 4 * kPage }), EEXIST);
    auto b = rt->map_anonymous({ .size = 8 * kPage, .address = base + 8 * kPage });
    EXPECT_TRUE(b);
}

TEST(Runtime, AlignmentIsHonoured)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    (void)map(*rt, kPage); // disturb the first free address
    for (size_t alignment : { size_t(64) << 10, size_t(2) << 20, size_t(1) << 30 }) {
        auto r = rt->map_anonymous({ .size = 4 * kPage, .alignment = alignment });
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(uintptr_t(*r) % alignment, 0u) << alignment;
        static_cast<char*>(*r)[0] = 1;
    }
}

TEST(Runtime, BadMapInput)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .arena_size = 1024 * kPage });
    EXPECT_EQ(map_errno(*rt, { .size = 0 }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = kPage + 1 }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = SIZE_MAX }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = SIZE_MAX & ~(kPage - 1) }), ENOMEM);
    EXPECT_EQ(map_errno(*rt, { .size = 2048 * kPage }), ENOMEM);
    EXPECT_EQ(map_errno(*rt, { .size = kPage, .alignment = 3 * kPage }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = kPage, .alignment = 512 }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = kPage, .address = static_cast<char*>(rt->arena_base()) + 1 }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = kPage, .address = reinterpret_cast<void*>(0x10000) }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = 2 * kPage, .address = static_cast<char*>(rt->arena_base()) + 1023 * kPage }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = kPage, .access = Access(8) }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = kPage, .flags = RegionFlags(1u << 20) }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = kPage, .access = Access::ReadWrite, .max_access = Access::Read }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = kPage, .access = Access::ReadWriteExecute }), EACCES);
    EXPECT_EQ(map_errno(*rt, { .size = kPage, .name = std::string(200, 'a') }), EINVAL);
    EXPECT_EQ(map_errno(*rt, { .size = kPage, .name = "bad[name]" }), EINVAL);
    // Nothing leaked: no region, nothing committed, all space free.
    auto st = rt->stats();
    EXPECT_EQ(st.region_count, 0u);
    EXPECT_EQ(st.committed, 0u);
    auto whole = rt->map_anonymous({ .size = 1024 * kPage });
    EXPECT_TRUE(whole) << "arena space leaked by failed calls";
}

TEST(Runtime, BadRangeInput)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = map(*rt, 16 * kPage);
    char* outside = reinterpret_cast<char*>(0x10000);
    EXPECT_EQ(rt->unmap(p, 0).error().code(), EINVAL);
    EXPECT_EQ(rt->unmap(p + 1, kPage).error().code(), EINVAL);
    EXPECT_EQ(rt->unmap(p, kPage + 5).error().code(), EINVAL);
    EXPECT_EQ(rt->unmap(p, SIZE_MAX & ~(kPage - 1)).error().code(), EINVAL);
    EXPECT_EQ(rt->unmap(outside, kPage).error().code(), EINVAL);
    EXPECT_EQ(rt->protect(outside, kPage, Access::Read).error().code(), EINVAL);
    EXPECT_EQ(rt->protect(p, 16 * kPage, Access(9)).error().code(), EINVAL);
    // A range with a hole: ENOENT, and nothing changes.
    EXPECT_EQ(rt->unmap(p, 32 * kPage).error().code(), ENOENT);
    EXPECT_EQ(rt->protect(p + 8 * kPage, 16 * kPage, Access::Read).error().code(), ENOENT);
    EXPECT_EQ(rt->stats().region_count, 1u);
    p[15 * kPage] = 1;
    EXPECT_EQ(p[15 * kPage], 1);
}

TEST(Runtime, DoubleUnmapIsENOENT)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = map(*rt, 4 * kPage);
    ASSERT_TRUE(rt->unmap(p, 4 * kPage));
    auto again = rt->unmap(p, 4 * kPage);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code(), ENOENT);
}

TEST(Runtime, PartialUnmapSplits)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = map(*rt, 12 * kPage);
    for (size_t i = 0; i < 12; ++i)
        p[i * kPage] = char(i + 1);
    ASSERT_TRUE(rt->unmap(p + 4 * kPage, 4 * kPage));
    EXPECT_EQ(rt->stats().region_count, 2u);
    for (size_t i : { 0, 3, 8, 11 })
        EXPECT_EQ(p[i * kPage], char(i + 1));
    auto low = rt->region_stats(p);
    auto high = rt->region_stats(p + 8 * kPage);
    ASSERT_TRUE(low && high);
    EXPECT_EQ(low->size, 4 * kPage);
    EXPECT_EQ(high->base, uintptr_t(p + 8 * kPage));
    EXPECT_EQ(rt->region_stats(p + 5 * kPage).error().code(), ENOENT);
    // The hole is reusable and reads zeros.
    auto mid = rt->map_anonymous({ .size = 4 * kPage, .address = p + 4 * kPage });
    ASSERT_TRUE(mid);
    EXPECT_EQ(p[5 * kPage], 0);
    // Unmapping across several regions at once.
    ASSERT_TRUE(rt->unmap(p + 2 * kPage, 8 * kPage));
    EXPECT_EQ(rt->stats().region_count, 2u);
    EXPECT_EQ(p[kPage], 2);
    EXPECT_EQ(p[10 * kPage], 11);
}

TEST(Runtime, ProtectSplitsAndEnforces)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = map(*rt, 8 * kPage);
    p[2 * kPage] = 5;
    ASSERT_TRUE(rt->protect(p + 2 * kPage, 2 * kPage, Access::Read));
    EXPECT_EQ(rt->stats().region_count, 3u);
    EXPECT_EQ(p[2 * kPage], 5);
    EXPECT_EQ(p[3 * kPage], 0); // read fault in a read-only piece
    EXPECT_EQ(rt->region_stats(p + 2 * kPage)->access, Access::Read);
    EXPECT_EQ(rt->region_stats(p)->access, Access::ReadWrite);
    EXPECT_DEATH(p[2 * kPage + 1] = 1, "");
    ASSERT_TRUE(rt->protect(p + 2 * kPage, 2 * kPage, Access::ReadWrite));
    p[3 * kPage] = 9;
    EXPECT_EQ(p[3 * kPage], 9);
}

TEST(Runtime, ProtectBeyondMaxAccessIsEACCES)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = 4 * kPage, .access = Access::Read, .max_access = Access::Read });
    ASSERT_TRUE(r);
    auto e = rt->protect(*r, 4 * kPage, Access::ReadWrite);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), EACCES);
    EXPECT_EQ(rt->stats().region_count, 1u) << "a refused protect must not split";
    EXPECT_TRUE(rt->protect(*r, 4 * kPage, Access::None));
    EXPECT_TRUE(rt->protect(*r, 4 * kPage, Access::Read));
}

TEST(Runtime, WriteExecuteRules)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = 4 * kPage, .access = Access::ReadWrite, .max_access = Access::ReadWriteExecute });
    ASSERT_TRUE(r);
    // W+X at once.
    EXPECT_EQ(rt->protect(*r, 4 * kPage, Access::ReadWriteExecute).error().code(), EACCES);
    // W -> X: the region has been writable.
    EXPECT_EQ(rt->protect(*r, 4 * kPage, Access::ReadExecute).error().code(), EACCES);
    // The history survives a split.
    ASSERT_TRUE(rt->protect(*r, kPage, Access::Read));
    EXPECT_EQ(rt->protect(*r, kPage, Access::ReadExecute).error().code(), EACCES);
    // X -> W.
    auto x = rt->map_anonymous({ .size = kPage, .access = Access::ReadExecute, .max_access = Access::ReadWriteExecute });
    ASSERT_TRUE(x);
    EXPECT_EQ(rt->protect(*x, kPage, Access::ReadWrite).error().code(), EACCES);

    FAULTLINE_RUNTIME_OR_SKIP(permissive, Config { .allow_write_execute = true });
    auto y = permissive->map_anonymous({ .size = kPage, .access = Access::ReadWriteExecute });
    EXPECT_TRUE(y);
    auto z = permissive->map_anonymous({ .size = kPage, .access = Access::ReadWrite, .max_access = Access::ReadWriteExecute });
    ASSERT_TRUE(z);
    EXPECT_TRUE(permissive->protect(*z, kPage, Access::ReadExecute));
}

TEST(Runtime, CommitLimitFailsAtCreation)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .commit_limit = 64 * kPage });
    auto a = rt->map_anonymous({ .size = 48 * kPage });
    ASSERT_TRUE(a);
    auto b = rt->map_anonymous({ .size = 32 * kPage });
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().code(), ENOMEM);
    // noreserve regions commit nothing.
    auto c = rt->map_anonymous({ .size = 1024 * kPage, .flags = RegionFlags::NoReserve });
    ASSERT_TRUE(c);
    static_cast<char*>(*c)[0] = 1;
    EXPECT_EQ(rt->stats().committed, 48 * kPage);
    // Unmapping part of a committed region returns its share.
    ASSERT_TRUE(rt->unmap(static_cast<char*>(*a) + 32 * kPage, 16 * kPage));
    EXPECT_EQ(rt->stats().committed, 32 * kPage);
    EXPECT_TRUE(rt->map_anonymous({ .size = 32 * kPage }));
    EXPECT_EQ(rt->stats().committed, 64 * kPage);
}

TEST(Runtime, DiscardDropsPages)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = map(*rt, 8 * kPage);
    memset(p, 7, 8 * kPage);
    ASSERT_TRUE(rt->discard(p + 2 * kPage, 2 * kPage));
    EXPECT_EQ(p[0], 7);
    EXPECT_EQ(p[2 * kPage], 0);
    EXPECT_EQ(p[3 * kPage + 100], 0);
    EXPECT_EQ(p[4 * kPage], 7);
    p[2 * kPage] = 3;
    EXPECT_EQ(p[2 * kPage], 3);
}

TEST(Runtime, DestructionUnmapsArena)
{
    void* base;
    size_t size;
    {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .arena_size = 256 * kPage });
        char* p = map(*rt, 16 * kPage);
        p[0] = 1;
        base = rt->arena_base();
        size = rt->arena_size();
    }
    // The range is gone: mincore on unmapped memory fails with ENOMEM.
    unsigned char vec[256];
    EXPECT_EQ(mincore(base, size, vec), -1);
    EXPECT_EQ(errno, ENOMEM);
}
