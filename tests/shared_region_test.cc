// Shared regions: pages in a memfd, seen by fork children.
#include "test_support.h"

#include <cstring>
#include <sys/wait.h>
#include <unistd.h>

using namespace faultline;
using faultline::testing::kPage;

TEST(SharedRegion, ForkChildSharesWritesBothWays)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    auto r = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Shared, .name = "shared" });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    p[0] = 'p'; // served by the runtime before the fork
    pid_t child = fork();
    if (child == 0) {
        // The child's copy is not registered with the parent's userfaultfd:
        // its first touches are served by the kernel from the same memfd.
        bool ok = p[0] == 'p' && p[2 * kPage] == 0;
        p[0] = 'c';
        p[kPage] = 'k';
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(p[0], 'c') << "the child's write must be visible in the parent";
    EXPECT_EQ(p[kPage], 'k');
    EXPECT_EQ(p[3 * kPage], 0);
    auto st = rt->region_stats(const_cast<char*>(p));
    EXPECT_STREQ(st->object_kind, "shared-anonymous");
    EXPECT_EQ(st->cow_pages, 0u);
    EXPECT_GE(st->amount_resident, 3 * kPage);
}

TEST(SharedRegion, PrivateRegionIsCopiedInstead)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    auto r = rt->map_anonymous({ .size = 4 * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile char*>(*r);
    p[0] = 'p';
    pid_t child = fork();
    if (child == 0) {
        p[0] = 'c';
        _exit(p[0] == 'c' ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(p[0], 'p');
}

TEST(SharedRegion, DiscardAndUnmapFreeThePages)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Shared });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    memset(p, 5, 8 * kPage);
    ASSERT_TRUE(rt->discard(p + kPage, 2 * kPage));
    EXPECT_EQ(p[kPage], 0);
    EXPECT_EQ(p[2 * kPage + 9], 0);
    EXPECT_EQ(p[3 * kPage], 5);
    ASSERT_TRUE(rt->unmap(p, 8 * kPage));
    // The range is plain arena memory again and reads zeros.
    auto again = rt->map_anonymous({ .size = 8 * kPage, .address = p });
    ASSERT_TRUE(again);
    for (size_t i = 0; i < 8; ++i)
        EXPECT_EQ(p[i * kPage], 0);
}

TEST(SharedRegion, SplitsAndProtects)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Shared });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    p[0] = 1;
    ASSERT_TRUE(rt->protect(p + 4 * kPage, 4 * kPage, Access::Read));
    EXPECT_EQ(p[5 * kPage], 0);
    EXPECT_DEATH(p[5 * kPage] = 1, "");
    ASSERT_TRUE(rt->unmap(p + 6 * kPage, 2 * kPage));
    EXPECT_EQ(rt->stats().region_count, 2u);
    ASSERT_TRUE(rt->make_immutable(p, 2 * kPage));
    p[kPage] = 7;
    EXPECT_EQ(p[kPage], 7);
}

// Purgeable regions are private anonymous memory (docs/purgeable.md).
TEST(SharedRegion, SharedPurgeableIsRefused)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = kPage, .flags = RegionFlags::Purgeable | RegionFlags::Shared });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_EQ(rt->stats().region_count, 0u);
}
