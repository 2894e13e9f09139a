// The kernel range (docs/kernels.md, "What works on which kernel"): for each
// kernel release the table names, a runtime with the features that release
// lacks hidden (Config::disable) does what the table says it does there —
// every capability either works, byte for byte, or refuses with the errno the
// table names. This is how the rows below this machine's kernel are checked:
// the runtime detects features, never versions, so hiding what a kernel
// lacks takes the same paths that kernel would. (Behaviour of the old
// kernels themselves beyond the feature bits is not covered here.)
#include "support/guarded_access.h"
#include "support/temp_file.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <ostream>
#include <string>
#include <unistd.h>

namespace faultline::testing {
namespace {

struct Kernel {
    const char* name;   // test name
    const char* hidden; // the features it lacks (FAULTLINE_DISABLE names)
};

// A feature from a later release is hidden in every earlier row. psi is
// left alone: whether triggers are allowed depends on privilege and the
// kernel's configuration more than on the release (the table says so).
constexpr Kernel kKernels[] = {
    { "Linux_5_10", "devnode,minor,wp_shmem,continue_wp,anon_name,poison,wp_async,pagemap_scan,mseal,dontunmap" },
    { "Linux_5_15", "devnode,wp_shmem,continue_wp,anon_name,poison,wp_async,pagemap_scan,mseal" },
    { "Linux_5_19", "devnode,continue_wp,poison,wp_async,pagemap_scan,mseal" },
    { "Linux_6_1", "continue_wp,poison,wp_async,pagemap_scan,mseal" },
    { "Linux_6_4", "poison,wp_async,pagemap_scan,mseal" },
    { "Linux_6_6", "wp_async,pagemap_scan,mseal" },
    { "Linux_6_7", "mseal" },
    { "Linux_6_10", "" },
};

void PrintTo(const Kernel& k, std::ostream* os) { *os << k.name << " (hidden: " << k.hidden << ")"; }

// Budgets here are small: eviction works in batches of 8 pages.
Config config_for(const Kernel& k)
{
    Config c;
    c.disable = k.hidden;
    c.eviction_batch_pages = 8;
    return c;
}

class KernelRange : public ::testing::TestWithParam<Kernel> {};

TEST_P(KernelRange, EveryCapabilityWorksOrRefusesAsTheTableSays)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, config_for(GetParam()));
    const bool wp_shmem = rt->has_feature("wp_shmem") && rt->has_feature("minor");

    // Anonymous memory: zero-fill, writes, protect, immutability.
    auto a = rt->map_anonymous({ .size = 32 * kPage, .name = "anon" });
    ASSERT_TRUE(a) << a.error().message();
    auto* ap = static_cast<volatile char*>(*a);
    EXPECT_EQ(ap[5 * kPage], 0);
    for (size_t i = 0; i < 32; ++i)
        ap[i * kPage + 1] = char(i + 1);
    for (size_t i = 0; i < 32; ++i)
        ASSERT_EQ(ap[i * kPage + 1], char(i + 1));
    ASSERT_TRUE(rt->make_immutable(const_cast<char*>(ap) + 28 * kPage, 4 * kPage));
    EXPECT_EQ(rt->unmap(const_cast<char*>(ap) + 28 * kPage, 4 * kPage).error().code(), EPERM);

    // A shared file region: writes reach the file on sync, and only the
    // pages written (where writes are tracked) or every cached one.
    TempFile f(16 * kPage + 100, 71);
    int rw = f.open_again(O_RDWR);
    auto s = rt->map_file(rw, { .length = 17 * kPage, .access = Access::ReadWrite, .name = "shared" });
    ASSERT_TRUE(s) << s.error().message();
    auto* sp = static_cast<volatile char*>(*s);
    const auto& want = f.contents();
    for (size_t i = 0; i < 16; ++i)
        ASSERT_EQ(sp[i * kPage + 7], want[i * kPage + 7]) << "page " << i;
    sp[3 * kPage] = 'S';
    sp[16 * kPage + 99] = 'E'; // the file's last byte
    ASSERT_TRUE(rt->sync(*s, 17 * kPage, SyncFlags::Sync));
    auto disk = f.read_back();
    EXPECT_EQ(disk[3 * kPage], 'S');
    EXPECT_EQ(disk[16 * kPage + 99], 'E');
    EXPECT_EQ(f.size_on_disk(), off_t(16 * kPage + 100)) << "write-back never extends the file";
    // Past the end of the file: SIGBUS, as mmap(2) (UFFDIO_POISON or its
    // fallback).
    EXPECT_EQ(sp[16 * kPage + 200], 0) << "the last page reads zeros past the file's end";
    auto big = rt->map_file(rw, { .length = 20 * kPage, .access = Access::Read, .name = "past-eof" });
    ASSERT_TRUE(big) << big.error().message();
    EXPECT_EQ(guarded_access([&] { (void)static_cast<volatile char*>(*big)[18 * kPage]; }), SIGBUS);
    EXPECT_EQ(static_cast<volatile char*>(*big)[2 * kPage + 7], want[2 * kPage + 7])
        << "the runtime serves on after the SIGBUS";

    // A writable shared file under a budget: evicts written pages where
    // writes can be stopped (write-protect on shared memory, 5.19), and is
    // refused with EOPNOTSUPP where they cannot.
    TempFile g(64 * kPage, 73);
    int grw = g.open_again(O_RDWR);
    auto b = rt->map_file(grw, { .length = 64 * kPage, .access = Access::ReadWrite, .name = "budgeted", .budget = 8 * kPage });
    if (!wp_shmem) {
        ASSERT_FALSE(b);
        EXPECT_EQ(b.error().code(), EOPNOTSUPP);
    } else {
        ASSERT_TRUE(b) << b.error().message();
        auto* bp = static_cast<volatile char*>(*b);
        for (size_t i = 0; i < 64; ++i)
            bp[i * kPage + 5] = char(~g.contents()[i * kPage + 5]);
        for (size_t i = 0; i < 64; ++i)
            ASSERT_EQ(bp[i * kPage + 5], char(~g.contents()[i * kPage + 5])) << "page " << i;
        ASSERT_TRUE(rt->sync(*b, 64 * kPage, SyncFlags::Sync));
        auto gd = g.read_back();
        for (size_t i = 0; i < 64; ++i)
            ASSERT_EQ(gd[i * kPage + 5], char(~g.contents()[i * kPage + 5])) << "page " << i;
        EXPECT_LE(rt->region_stats(*b)->amount_resident, 8 * kPage + 16 * kPage) << "held near its budget";
    }
    close(grw);
    close(rw);

    // Copy-on-write: a clone diverges from its source.
    auto c = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Clonable, .name = "clonable" });
    ASSERT_TRUE(c) << c.error().message();
    static_cast<char*>(*c)[kPage] = 'c';
    auto cl = rt->clone(*c);
    ASSERT_TRUE(cl) << cl.error().message();
    static_cast<char*>(*cl)[kPage] = 'k';
    EXPECT_EQ(static_cast<volatile char*>(*c)[kPage], 'c');
    EXPECT_EQ(static_cast<volatile char*>(*cl)[kPage], 'k');

    // Purgeable memory: a purged page is reported and reads zeros.
    auto v = rt->allocate_purgeable(4 * kPage);
    ASSERT_TRUE(v) << v.error().message();
    memset(*v, 'v', 4 * kPage);
    ASSERT_TRUE(rt->set_volatile(*v, 4 * kPage));
    auto purged = rt->purge(kPurgeAll);
    ASSERT_TRUE(purged) << purged.error().message();
    EXPECT_EQ(purged->purged_bytes, 4 * kPage);
    auto nv = rt->set_nonvolatile(*v, 4 * kPage);
    ASSERT_TRUE(nv);
    EXPECT_TRUE(nv->purged);
    EXPECT_EQ(static_cast<volatile char*>(*v)[kPage], 0);
}

TEST_P(KernelRange, AnonymousMemoryUnderABudgetSwapsByteExact)
{
    Config config = config_for(GetParam());
    config.memory_budget = 16 * kPage;
    FAULTLINE_RUNTIME_OR_SKIP(rt, config);
    // The swap pager needs write-protect faults on anonymous memory (5.7):
    // every row of the table has them, unless the environment hides them.
    if (!rt->has_feature("wp"))
        GTEST_SKIP() << "write-protect faults hidden by FAULTLINE_DISABLE (no kernel in the table lacks them)";
    ASSERT_TRUE(rt->stats().swap_enabled);
    auto a = rt->map_anonymous({ .size = 64 * kPage, .name = "swapped" });
    ASSERT_TRUE(a) << a.error().message();
    auto* p = static_cast<volatile char*>(*a);
    for (size_t i = 0; i < 64; ++i)
        p[i * kPage + 11] = char(i * 3 + 1);
    for (size_t i = 0; i < 64; ++i)
        ASSERT_EQ(p[i * kPage + 11], char(i * 3 + 1)) << "page " << i;
    EXPECT_GT(rt->stats().swapped_out, 0u);
}

INSTANTIATE_TEST_SUITE_P(Rows, KernelRange, ::testing::ValuesIn(kKernels),
    [](const auto& info) { return std::string(info.param.name); });

} // namespace
} // namespace faultline::testing
