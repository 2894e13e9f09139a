// Write-protect faults routed to an object (issue: the fault path for every
// kind, part 2): a minimal object tracks dirty pages through them on
// anonymous memory, with its range registered for MISSING|WP; a
// write-protect fault nobody expects is resolved, never looped.
#include "support/core_fixture.h"
#include "support/dirty_tracking_object.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace faultline::testing {
namespace {

constexpr size_t kPage = 4096;

TEST(WriteProtect, DirtyPagesAreTrackedThroughWriteProtectFaults)
{
    FAULTLINE_CORE_OR_SKIP(core, Config {});
    if (!core->features().has(os::Feature::WriteProtect))
        GTEST_SKIP() << "write-protect faults unavailable (kernel before 5.7, or FAULTLINE_DISABLE=wp); "
                        "DirtyPagesFallBackToResidentPages covers this case";
    auto object = DirtyTrackingObject::create(64, true);
    auto r = core->map_object({ .size = 64 * kPage, .name = "dirty" }, object);
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    for (size_t i = 0; i < 64; ++i)
        EXPECT_EQ(p[i * kPage], 0);  // every page installed write-protected
    EXPECT_TRUE(object->collect(core->userfaultfd(), uintptr_t(*r)).empty()) << "reads dirty nothing";

    const uint64_t wp_before = core->stats().write_protect_faults;
    p[3 * kPage] = 3;
    p[10 * kPage + 100] = 10;
    p[40 * kPage + 4095] = 40;
    p[40 * kPage] = 41; // a second write to a page already unprotected: no fault
    EXPECT_EQ(core->stats().write_protect_faults - wp_before, 3u);
    EXPECT_EQ(object->collect(core->userfaultfd(), uintptr_t(*r)), (std::vector<size_t> { 3, 10, 40 }));
    EXPECT_EQ(p[3 * kPage], 3);
    EXPECT_EQ(p[10 * kPage + 100], 10);
    EXPECT_EQ(p[40 * kPage + 4095], 40);
    EXPECT_EQ(p[40 * kPage], 41);

    // collect() protected them again: the next write is seen again.
    p[10 * kPage] = 11;
    EXPECT_EQ(object->collect(core->userfaultfd(), uintptr_t(*r)), (std::vector<size_t> { 10 }));
    EXPECT_EQ(p[10 * kPage], 11);
    EXPECT_EQ(p[10 * kPage + 100], 10);

    auto rs = core->region_stats(uintptr_t(*r));
    ASSERT_TRUE(rs);
    EXPECT_EQ(rs->write_protect_faults, 4u);
    EXPECT_EQ(rs->zero_faults, 64u);
}

TEST(WriteProtect, ManyThreadsWritingProtectedPages)
{
    FAULTLINE_CORE_OR_SKIP(core, Config {});
    if (!core->features().has(os::Feature::WriteProtect))
        GTEST_SKIP() << "write-protect faults unavailable (kernel before 5.7, or FAULTLINE_DISABLE=wp)";
    auto object = DirtyTrackingObject::create(256, true);
    auto r = core->map_object({ .size = 256 * kPage }, object);
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile char*>(*r);
    for (size_t i = 0; i < 256; ++i)
        (void)p[i * kPage];
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (size_t i = size_t(t); i < 256; i += 2)
                p[i * kPage + size_t(t)] = char(t + 1);
        });
    for (auto& t : threads)
        t.join();
    auto dirty = object->collect(core->userfaultfd(), uintptr_t(*r));
    EXPECT_EQ(dirty.size(), 256u);
    for (size_t i = 0; i < 256; ++i)
        for (int t = 0; t < 8; ++t)
            if (size_t(t) % 2 == i % 2 && size_t(t) <= i) {
                ASSERT_EQ(p[i * kPage + size_t(t)], char(t + 1)) << "page " << i << " thread " << t;
            }
}

TEST(WriteProtect, DirtyPagesFallBackToResidentPages)
{
    // What an object that tracks writes does without write-protect faults
    // (FAULTLINE_DISABLE=wp, or an old kernel): every resident page counts.
    FAULTLINE_CORE_OR_SKIP(core, Config { .disable = "wp" });
    ASSERT_FALSE(core->features().has(os::Feature::WriteProtect));
    auto object = DirtyTrackingObject::create(16, false);
    auto r = core->map_object({ .size = 16 * kPage }, object);
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    (void)p[2 * kPage];
    p[5 * kPage] = 5;
    EXPECT_EQ(object->collect(core->userfaultfd(), uintptr_t(*r)), (std::vector<size_t> { 2, 5 }));
    EXPECT_EQ(p[5 * kPage], 5);
}

TEST(WriteProtect, UnexpectedProtectionOnAnonymousMemoryIsLifted)
{
    // A region whose object does not track writes, with a page protected
    // behind its back: the write-protect fault must be resolved (lifted),
    // not answered like a missing page forever.
    FAULTLINE_CORE_OR_SKIP(core, Config {});
    if (!core->features().has(os::Feature::WriteProtect))
        GTEST_SKIP() << "write-protect faults unavailable (kernel before 5.7, or FAULTLINE_DISABLE=wp)";
    auto object = DirtyTrackingObject::create(4, true); // registered MISSING|WP
    auto r = core->map_object({ .size = 4 * kPage }, object);
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile char*>(*r);
    p[0] = 1; // a write fault installs the page writable
    ASSERT_EQ(core->userfaultfd().writeprotect(uintptr_t(*r), kPage, true, false), 0);
    p[0] = 2; // WP fault: the object marks it dirty and lifts the protection
    EXPECT_EQ(p[0], 2);

    // And on the plain anonymous object, which never asked for protection:
    // register its range for WP by hand and protect a page.
    auto plain = core->map_anonymous({ .size = 4 * kPage });
    ASSERT_TRUE(plain);
    auto* q = static_cast<volatile char*>(*plain);
    q[0] = 1;
    ASSERT_TRUE(core->userfaultfd().register_range(uintptr_t(*plain), 4 * kPage, uffd::Mode::Missing | uffd::Mode::WriteProtect));
    ASSERT_EQ(core->userfaultfd().writeprotect(uintptr_t(*plain), kPage, true, false), 0);
    const uint64_t before = core->stats().write_protect_faults;
    q[0] = 7;
    EXPECT_EQ(q[0], 7);
    // One write-protect fault — or two, if the thread was woken for another
    // reason (a sanitizer's signal) and wrote again before the protection
    // was lifted: never a loop.
    const uint64_t wp = core->stats().write_protect_faults - before;
    EXPECT_GE(wp, 1u);
    EXPECT_LE(wp, 2u);
    auto rs = core->region_stats(uintptr_t(*plain));
    ASSERT_TRUE(rs);
    EXPECT_EQ(rs->write_protect_faults, wp);
    // The hand-registered range is reset when unmapped like any other.
    EXPECT_TRUE(core->unmap(uintptr_t(*plain), 4 * kPage));
}

} // namespace
} // namespace faultline::testing
