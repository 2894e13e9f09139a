// Every optional kernel feature hidden one at a time (Config::disable, the
// same mask as FAULTLINE_DISABLE): the runtime works through its fallback.
// The CI's masked-feature run hides all of them at once for the whole suite.
#include "test_support.h"

#include "os/features.h"

#include <cstring>
#include <sys/mman.h>

using namespace faultline;
using faultline::testing::kPage;

namespace {

// The basic contract every configuration must keep.
void exercise(Runtime& rt)
{
    auto r = rt.map_anonymous({ .size = 64 * kPage, .name = "fallback" });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<char*>(*r);
    EXPECT_EQ(static_cast<volatile char*>(p)[10 * kPage], 0);
    for (size_t i = 0; i < 64; ++i)
        p[i * kPage + 3] = char(i);
    for (size_t i = 0; i < 64; ++i)
        ASSERT_EQ(p[i * kPage + 3], char(i));
    ASSERT_TRUE(rt.protect(p, 8 * kPage, Access::Read));
    ASSERT_TRUE(rt.make_immutable(p + 60 * kPage, 4 * kPage));
    EXPECT_EQ(rt.unmap(p + 60 * kPage, 4 * kPage).error().code(), EPERM);
    ASSERT_TRUE(rt.unmap(p + 8 * kPage, 8 * kPage));
    EXPECT_FALSE(rt.to_json().empty());
}

} // namespace

class Fallback : public ::testing::TestWithParam<const char*> {};

TEST_P(Fallback, RuntimeWorksWithFeatureHidden)
{
    const char* feature = GetParam();
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = feature });
    EXPECT_FALSE(rt->has_feature(feature)) << feature << " should be hidden";
    exercise(*rt);
}

INSTANTIATE_TEST_SUITE_P(EachFeature, Fallback,
    ::testing::Values("syscall", "devnode", "thread_id", "poison", "zeropage", "mseal", "anon_name", "wp", "wp_shmem",
        "minor", "pagemap_scan", "io_uring", "wp_async", "continue_wp", "dontunmap", "all"),
    [](const auto& info) { return std::string(info.param); });

TEST(FallbackDetails, DevNodeRouteWhenSyscallHidden)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = "syscall" });
    EXPECT_TRUE(rt->has_feature("devnode"));
}

TEST(FallbackDetails, NoRouteLeftNamesTheFix)
{
    auto rt = Runtime::create({ .disable = "syscall,devnode" });
    ASSERT_FALSE(rt);
    EXPECT_EQ(rt.error().code(), EPERM);
    const std::string& m = rt.error().message();
    EXPECT_NE(m.find("vm.unprivileged_userfaultfd"), std::string::npos) << m;
    EXPECT_NE(m.find("/dev/userfaultfd"), std::string::npos) << m;
    EXPECT_NE(m.find("CAP_SYS_PTRACE"), std::string::npos) << m;
}

TEST(FallbackDetails, WithoutZeropageReadsGetPrivateZeroPages)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1, .disable = "zeropage" });
    auto r = rt->map_anonymous({ .size = 4 * kPage });
    ASSERT_TRUE(r);
    EXPECT_EQ(static_cast<volatile char*>(*r)[0], 0);
    auto st = rt->region_stats(*r);
    EXPECT_EQ(st->amount_resident, kPage);
    EXPECT_EQ(st->amount_zero_mapped, 0u);
}

TEST(FallbackDetails, WithoutMsealImmutabilityIsRuntimeOnly)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = "mseal" });
    auto r = rt->map_anonymous({ .size = 4 * kPage, .flags = RegionFlags::Immutable });
    ASSERT_TRUE(r);
    EXPECT_EQ(rt->unmap(*r, 4 * kPage).error().code(), EPERM);
    // Not sealed: the kernel would allow a direct mprotect.
    EXPECT_EQ(mprotect(*r, kPage, PROT_READ), 0);
}

TEST(FallbackDetails, WithoutThreadIdNoPerThreadCounters)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = "thread_id" });
    auto r = rt->map_anonymous({ .size = 4 * kPage });
    ASSERT_TRUE(r);
    static_cast<char*>(*r)[0] = 1;
    auto st = rt->stats();
    EXPECT_FALSE(st.thread_ids_available);
    EXPECT_TRUE(st.threads.empty());
}

TEST(FallbackDetails, UnknownNamesAreIgnored)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = "no_such_feature" });
    exercise(*rt);
}

TEST(FallbackDetails, StatisticsAgreeWithAndWithoutPagemapScan)
{
    // The two ways statistics read the page tables (PAGEMAP_SCAN, or the
    // object's populated blocks read from /proc/self/pagemap) must give the
    // same figures.
    RegionStats seen[2];
    std::string maps[2];
    size_t resident = 0;
    for (int hidden = 0; hidden < 2; ++hidden) {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1, .disable = hidden ? "pagemap_scan" : "" });
        EXPECT_EQ(rt->has_feature("pagemap_scan"), hidden == 0 && rt->has_feature("pagemap_scan"));
        auto r = rt->map_anonymous({ .size = 9000 * kPage, .flags = RegionFlags::NoReserve });
        ASSERT_TRUE(r);
        auto* p = static_cast<volatile char*>(*r);
        for (size_t i : { 0, 1, 4095, 4096, 8999 })
            p[i * kPage] = 1;
        for (size_t i : { 7, 5000 })
            (void)p[i * kPage];
        auto st = rt->region_stats(const_cast<char*>(p));
        ASSERT_TRUE(st);
        seen[hidden] = *st;
        // Without UFFDIO_ZEROPAGE the two reads cost private pages too.
        resident = rt->has_feature("zeropage") ? 5 * kPage : 7 * kPage;
        std::string json = rt->to_json();
        auto at = json.find("\"page_map\":\"");
        ASSERT_NE(at, std::string::npos);
        maps[hidden] = json.substr(at, json.find('"', at + 12) - at);
    }
    EXPECT_EQ(seen[0].amount_resident, resident);
    EXPECT_EQ(seen[1].amount_resident, resident);
    EXPECT_EQ(seen[0].amount_zero_mapped, seen[1].amount_zero_mapped);
    EXPECT_EQ(seen[0].cow_pages, 0u);
    EXPECT_EQ(seen[1].cow_pages, 0u);
    EXPECT_EQ(maps[0], maps[1]);
}
