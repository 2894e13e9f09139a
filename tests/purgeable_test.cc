// Purgeable memory: the API, exact purge reports, commit accounting and bad
// input (docs/purgeable.md). Order, triggers, callbacks and concurrency are
// in purgeable_purge_test.cc.
#include "fork_support.h"
#include "test_support.h"

#include <faultline/runtime.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

using namespace faultline;
using namespace faultline::testing;

namespace {

// Writes a byte pattern that names the page into every page of [p, p+pages).
void fill(char* p, size_t pages, char tag)
{
    for (size_t i = 0; i < pages; ++i)
        std::memset(p + i * kPage, char(tag + i), kPage);
}

// True when every byte of page i holds tag + i.
bool holds(const char* p, size_t pages, char tag)
{
    for (size_t i = 0; i < pages; ++i)
        for (size_t b = 0; b < kPage; ++b)
            if (p[i * kPage + b] != char(tag + i))
                return false;
    return true;
}

bool zeros(const char* p, size_t bytes)
{
    for (size_t i = 0; i < bytes; ++i)
        if (p[i])
            return false;
    return true;
}

PageRange range(char* p, size_t first, size_t pages) { return { p + first * kPage, pages * kPage }; }

} // namespace

TEST(Purgeable, AllocatesAnonymousMemory)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto mapped = rt->allocate_purgeable(16 * kPage, { .name = "cache" });
    ASSERT_TRUE(mapped) << mapped.error().message();
    char* p = static_cast<char*>(*mapped);
    EXPECT_TRUE(zeros(p, 16 * kPage));
    fill(p, 16, 1);
    EXPECT_TRUE(holds(p, 16, 1));
    auto st = rt->region_stats(p).value();
    EXPECT_TRUE(has(st.flags, RegionFlags::Purgeable));
    EXPECT_STREQ(st.object_kind, "purgeable");
    EXPECT_EQ(st.volatile_bytes, 0u);
    EXPECT_EQ(st.nonvolatile_resident, 16 * kPage);
    EXPECT_EQ(rt->stats().committed, 16 * kPage);
    // map_anonymous with the flag maps the same kind of region.
    auto flagged = rt->map_anonymous({ .size = 4 * kPage, .flags = RegionFlags::Purgeable });
    ASSERT_TRUE(flagged) << flagged.error().message();
    EXPECT_STREQ(rt->region_stats(*flagged).value().object_kind, "purgeable");
    ASSERT_TRUE(rt->unmap(p, 16 * kPage));
    ASSERT_TRUE(rt->unmap(*flagged, 4 * kPage));
    EXPECT_EQ(rt->stats().committed, 0u);
}

TEST(Purgeable, NonVolatileAgainWithoutPurgeReportsNothingAndKeepsData)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = static_cast<char*>(rt->allocate_purgeable(32 * kPage).value());
    fill(p, 32, 3);
    ASSERT_TRUE(rt->set_volatile(p, 32 * kPage));
    EXPECT_EQ(rt->region_stats(p).value().volatile_bytes, 32 * kPage);
    EXPECT_EQ(rt->region_stats(p).value().volatile_resident, 32 * kPage);
    auto r = rt->set_nonvolatile(p, 32 * kPage);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_FALSE(r->purged);
    EXPECT_TRUE(r->purged_ranges.empty());
    EXPECT_TRUE(holds(p, 32, 3));
    EXPECT_EQ(rt->region_stats(p).value().volatile_bytes, 0u);
}

// Only populated volatile pages are reported, exactly, coalesced.
TEST(Purgeable, ExactRangesAfterPartialPurges)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1, .fault_around_max_pages = 1 });
    char* p = static_cast<char*>(rt->allocate_purgeable(32 * kPage).value());
    // Populated: 0-15 and 20-23. Never touched: 16-19, 24-31.
    fill(p, 16, 10);
    fill(p + 20 * kPage, 4, 40);
    // Three spans: [0, 6) obsolete, [6, 12) low, [12, 32) normal.
    ASSERT_TRUE(rt->set_volatile(p, 6 * kPage, { .priority = PurgePriority::Obsolete }));
    ASSERT_TRUE(rt->set_volatile(p + 6 * kPage, 6 * kPage, { .priority = PurgePriority::Low }));
    ASSERT_TRUE(rt->set_volatile(p + 12 * kPage, 20 * kPage, { .priority = PurgePriority::Normal }));

    // One byte: the first span in order (obsolete) goes, whole.
    auto first = rt->purge(1);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(first->purged_bytes, 6 * kPage);
    auto st = rt->region_stats(p).value();
    EXPECT_EQ(st.purged_pages, 6u);
    EXPECT_EQ(st.volatile_resident, 14 * kPage); // 6-15 and 20-23

    // Pages 3-8 back: only 3-5 were purged.
    auto r = rt->set_nonvolatile(p + 3 * kPage, 6 * kPage);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->purged);
    ASSERT_EQ(r->purged_ranges.size(), 1u);
    EXPECT_EQ(r->purged_ranges[0], range(p, 3, 3));
    EXPECT_TRUE(zeros(p + 3 * kPage, 3 * kPage));
    EXPECT_TRUE(holds(p + 6 * kPage, 3, 16));

    // Everything else: 0-2 still purged and volatile; 9-11 and 12-31 purged now.
    auto all = rt->purge(kPurgeAll);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->purged_bytes, (3 + 4 + 4) * kPage); // 9-11, 12-15, 20-23 were resident
    r = rt->set_nonvolatile(p, 32 * kPage);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->purged_ranges.size(), 3u);
    EXPECT_EQ(r->purged_ranges[0], range(p, 0, 3));
    EXPECT_EQ(r->purged_ranges[1], range(p, 9, 7)); // 9-15
    EXPECT_EQ(r->purged_ranges[2], range(p, 20, 4));
    EXPECT_TRUE(zeros(p, 32 * kPage) == false); // 3-8 hold data again
    EXPECT_TRUE(zeros(p + 9 * kPage, 23 * kPage));
    EXPECT_TRUE(holds(p + 6 * kPage, 3, 16));
    // Reported once: a second round reports nothing.
    ASSERT_TRUE(rt->set_volatile(p, 32 * kPage));
    r = rt->set_nonvolatile(p, 32 * kPage);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->purged);
}

// A purged page touched while still volatile reads zeros (the default) and
// is still reported; the purge counters say what happened.
TEST(Purgeable, PurgedPageReadsZerosWhileVolatile)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = static_cast<char*>(rt->allocate_purgeable(8 * kPage).value());
    fill(p, 8, 7);
    ASSERT_TRUE(rt->set_volatile(p, 8 * kPage));
    ASSERT_EQ(rt->purge(kPurgeAll).value().purged_bytes, 8 * kPage);
    EXPECT_TRUE(zeros(p, 8 * kPage));
    p[kPage] = 1; // used without pinning: allowed, and still reported
    auto st = rt->region_stats(p).value();
    EXPECT_GE(st.purged_refaults, 1u);
    EXPECT_EQ(st.purges, 1u);
    EXPECT_EQ(st.purged_bytes, 8 * kPage);
    auto r = rt->set_nonvolatile(p, 8 * kPage).value();
    ASSERT_EQ(r.purged_ranges.size(), 1u);
    EXPECT_EQ(r.purged_ranges[0], range(p, 0, 8));
    auto totals = rt->purge_stats();
    EXPECT_EQ(totals.purges, 1u);
    EXPECT_EQ(totals.purged_bytes, 8 * kPage);
}

TEST(Purgeable, NonVolatileMemoryIsNeverPurged)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = static_cast<char*>(rt->allocate_purgeable(64 * kPage).value());
    char* q = static_cast<char*>(rt->allocate_purgeable(16 * kPage).value());
    fill(p, 64, 5);
    fill(q, 16, 9);
    // Every other 8 pages volatile.
    for (size_t i = 0; i < 64; i += 16)
        ASSERT_TRUE(rt->set_volatile(p + i * kPage, 8 * kPage));
    ASSERT_EQ(rt->purge(kPurgeAll).value().purged_bytes, 32 * kPage);
    for (size_t i = 0; i < 64; i += 16) {
        EXPECT_TRUE(zeros(p + i * kPage, 8 * kPage));
        EXPECT_TRUE(holds(p + (i + 8) * kPage, 8, char(5 + i + 8)));
    }
    EXPECT_TRUE(holds(q, 16, 9));
    auto r = rt->set_nonvolatile(p, 64 * kPage).value();
    EXPECT_EQ(r.purged_ranges.size(), 4u);
}

// Volatile pages release their commit charge; an allocation that needs the
// room purges them first; re-committing purged pages can fail with ENOMEM.
TEST(Purgeable, VolatilePagesReleaseTheirCharge)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .commit_limit = 64 * kPage });
    char* p = static_cast<char*>(rt->allocate_purgeable(48 * kPage).value());
    fill(p, 48, 2);
    EXPECT_EQ(rt->stats().committed, 48 * kPage);
    // Not enough room while p is committed.
    auto refused = rt->map_anonymous({ .size = 32 * kPage });
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), ENOMEM);

    ASSERT_TRUE(rt->set_volatile(p, 48 * kPage));
    EXPECT_EQ(rt->stats().committed, 0u);
    EXPECT_EQ(rt->purge_stats().reclaimable, 48 * kPage);
    // Now it fits, once the volatile pages are purged.
    auto q = rt->map_anonymous({ .size = 32 * kPage });
    ASSERT_TRUE(q) << q.error().message();
    EXPECT_GE(rt->purge_stats().commit_purges, 1u);
    EXPECT_EQ(rt->purge_stats().reclaimable, 0u);
    EXPECT_EQ(rt->stats().committed, 32 * kPage);
    // Taking p back needs 48 pages of fresh charge: 32 + 48 > 64.
    auto back = rt->set_nonvolatile(p, 48 * kPage);
    ASSERT_FALSE(back);
    EXPECT_EQ(back.error().code(), ENOMEM);
    EXPECT_EQ(rt->region_stats(p).value().volatile_bytes, 48 * kPage);
    EXPECT_EQ(rt->stats().committed, 32 * kPage);
    // Once q is gone it fits, and the purge is reported.
    ASSERT_TRUE(rt->unmap(*q, 32 * kPage));
    auto r = rt->set_nonvolatile(p, 48 * kPage);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(r->purged_ranges.size(), 1u);
    EXPECT_EQ(r->purged_ranges[0], range(p, 0, 48));
    EXPECT_EQ(rt->stats().committed, 48 * kPage);
    ASSERT_TRUE(rt->unmap(p, 48 * kPage));
    EXPECT_EQ(rt->stats().committed, 0u);
    EXPECT_EQ(rt->purge_stats().reclaimable, 0u);
}

// ENOMEM on re-commit: the range stays volatile, its unpurged pages keep
// their data, and no other state changes.
TEST(Purgeable, EnomemOnRecommitKeepsDataAndState)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .commit_limit = 64 * kPage });
    char* a = static_cast<char*>(rt->allocate_purgeable(32 * kPage).value());
    fill(a, 32, 20);
    ASSERT_TRUE(rt->set_volatile(a, 16 * kPage, { .priority = PurgePriority::Obsolete }));
    ASSERT_TRUE(rt->set_volatile(a + 16 * kPage, 16 * kPage, { .priority = PurgePriority::High }));
    ASSERT_EQ(rt->purge(1).value().purged_bytes, 16 * kPage); // the obsolete half
    // 40 committed + 16 reclaimable (the high half) fit in 64 without a purge.
    void* b = rt->map_anonymous({ .size = 40 * kPage }).value();
    EXPECT_EQ(rt->purge_stats().commit_purges, 0u);
    const size_t committed = rt->stats().committed;
    auto back = rt->set_nonvolatile(a, 32 * kPage);
    ASSERT_FALSE(back);
    EXPECT_EQ(back.error().code(), ENOMEM);
    // Nothing changed: still volatile, the high half's data is there, the
    // ledger is as it was, nothing was purged to make room.
    EXPECT_EQ(rt->stats().committed, committed);
    EXPECT_EQ(rt->purge_stats().reclaimable, 16 * kPage);
    auto st = rt->region_stats(a).value();
    EXPECT_EQ(st.volatile_bytes, 32 * kPage);
    EXPECT_EQ(st.purged_pages, 16u);
    EXPECT_TRUE(holds(a + 16 * kPage, 16, 36));
    // The unpurged half alone needs no fresh charge: it comes back whole.
    auto half = rt->set_nonvolatile(a + 16 * kPage, 16 * kPage);
    ASSERT_TRUE(half) << half.error().message();
    EXPECT_FALSE(half->purged);
    EXPECT_TRUE(holds(a + 16 * kPage, 16, 36));
    ASSERT_TRUE(rt->unmap(b, 40 * kPage));
    auto rest = rt->set_nonvolatile(a, 16 * kPage).value();
    ASSERT_EQ(rest.purged_ranges.size(), 1u);
    EXPECT_EQ(rest.purged_ranges[0], range(a, 0, 16));
}

TEST(Purgeable, NoReserveRegionsChargeNothing)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .commit_limit = 8 * kPage });
    char* p = static_cast<char*>(rt->allocate_purgeable(64 * kPage, { .flags = RegionFlags::NoReserve }).value());
    fill(p, 64, 1);
    ASSERT_TRUE(rt->set_volatile(p, 64 * kPage));
    EXPECT_EQ(rt->purge_stats().reclaimable, 0u);
    ASSERT_TRUE(rt->purge(kPurgeAll));
    auto r = rt->set_nonvolatile(p, 64 * kPage);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->purged_ranges.size(), 1u);
    EXPECT_EQ(rt->stats().committed, 0u);
}

// A split region (protect, rename) keeps one object: volatility and reports
// follow the pages, whichever piece they are in now.
TEST(Purgeable, SplitRegionsKeepVolatility)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = static_cast<char*>(rt->allocate_purgeable(16 * kPage).value());
    fill(p, 16, 1);
    ASSERT_TRUE(rt->set_volatile(p + 4 * kPage, 8 * kPage));
    ASSERT_TRUE(rt->set_name(p + 8 * kPage, 8 * kPage, "upper"));
    EXPECT_EQ(rt->region_stats(p).value().volatile_bytes, 4 * kPage);
    EXPECT_EQ(rt->region_stats(p + 8 * kPage).value().volatile_bytes, 4 * kPage);
    ASSERT_TRUE(rt->purge(kPurgeAll));
    auto r = rt->set_nonvolatile(p, 16 * kPage).value();
    ASSERT_EQ(r.purged_ranges.size(), 1u);
    EXPECT_EQ(r.purged_ranges[0], range(p, 4, 8));
    EXPECT_TRUE(holds(p, 4, 1));
    EXPECT_TRUE(holds(p + 12 * kPage, 4, 13));
    // Unmapping a volatile piece gives every charge back.
    ASSERT_TRUE(rt->set_volatile(p + 8 * kPage, 8 * kPage));
    ASSERT_TRUE(rt->purge(kPurgeAll));
    ASSERT_TRUE(rt->unmap(p + 8 * kPage, 8 * kPage));
    EXPECT_EQ(rt->stats().committed, 8 * kPage);
    EXPECT_EQ(rt->purge_stats().reclaimable, 0u);
    ASSERT_TRUE(rt->unmap(p, 8 * kPage));
    EXPECT_EQ(rt->stats().committed, 0u);
}

// --- bad input ------------------------------------------------------------------

TEST(PurgeableBadInput, AllocationOptions)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto expect = [&](Result<void*> r, int code) {
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), code) << r.error().message();
    };
    expect(rt->allocate_purgeable(0), EINVAL);
    expect(rt->allocate_purgeable(kPage + 1), EINVAL);
    expect(rt->allocate_purgeable(kPage, { .flags = RegionFlags::Shared }), EINVAL);
    expect(rt->allocate_purgeable(kPage, { .flags = RegionFlags::Stack }), EINVAL);
    expect(rt->allocate_purgeable(kPage, { .purged_access = PurgedAccess::Callback }), EINVAL);
    expect(rt->allocate_purgeable(kPage, { .purged_access = PurgedAccess(9) }), EINVAL);
    expect(rt->allocate_purgeable(size_t(1) << 62), ENOMEM);
    EXPECT_EQ(rt->stats().region_count, 0u);
    EXPECT_EQ(rt->stats().committed, 0u);
}

TEST(PurgeableBadInput, Config)
{
    auto rt = Runtime::create(Config { .purge = { .order = PurgeOrder(5) } });
    ASSERT_FALSE(rt);
    EXPECT_EQ(rt.error().code(), EINVAL);
}

TEST(PurgeableBadInput, Ranges)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = static_cast<char*>(rt->allocate_purgeable(8 * kPage).value());
    char* plain = static_cast<char*>(rt->map_anonymous({ .size = 4 * kPage }).value());
    auto code = [](const auto& r) { return r ? 0 : r.error().code(); };
    EXPECT_EQ(code(rt->set_volatile(p + 1, kPage)), EINVAL);
    EXPECT_EQ(code(rt->set_volatile(p, kPage + 1)), EINVAL);
    EXPECT_EQ(code(rt->set_volatile(p, 0)), EINVAL);
    EXPECT_EQ(code(rt->set_volatile(p, SIZE_MAX - kPage + 1)), EINVAL);
    EXPECT_EQ(code(rt->set_volatile(reinterpret_cast<void*>(kPage), kPage)), EINVAL);
    EXPECT_EQ(code(rt->set_volatile(p, kPage, { .priority = PurgePriority(7) })), EINVAL);
    EXPECT_EQ(code(rt->set_nonvolatile(p + 1, kPage)), EINVAL);
    EXPECT_EQ(code(rt->set_nonvolatile(p, 0)), EINVAL);
    // Not purgeable.
    EXPECT_EQ(code(rt->set_volatile(plain, kPage)), EINVAL);
    EXPECT_EQ(code(rt->set_nonvolatile(plain, kPage)), EINVAL);
    // Partly unmapped: a hole in the range.
    ASSERT_TRUE(rt->unmap(p + 6 * kPage, kPage));
    EXPECT_EQ(code(rt->set_volatile(p + 4 * kPage, 4 * kPage)), ENOENT);
    EXPECT_EQ(code(rt->set_nonvolatile(p + 4 * kPage, 4 * kPage)), ENOENT);
    // Nothing half-done: the mapped part of a refused range is untouched.
    EXPECT_EQ(rt->region_stats(p + 4 * kPage).value().volatile_bytes, 0u);
    EXPECT_EQ(rt->stats().committed, 11 * kPage);
    // Immutable.
    ASSERT_TRUE(rt->make_immutable(p, 2 * kPage));
    EXPECT_EQ(code(rt->set_volatile(p, 4 * kPage)), EPERM);
    EXPECT_EQ(code(rt->set_nonvolatile(p, kPage)), EPERM);
    EXPECT_EQ(rt->region_stats(p + 2 * kPage).value().volatile_bytes, 0u);
    // purge(0).
    EXPECT_EQ(code(rt->purge(0)), EINVAL);
}

// A range over a purgeable and a plain region is refused whole.
TEST(PurgeableBadInput, MixedRangeChangesNothing)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* base = static_cast<char*>(rt->allocate_purgeable(4 * kPage).value());
    auto plain = rt->map_anonymous({ .size = 4 * kPage, .address = base + 4 * kPage });
    ASSERT_TRUE(plain) << plain.error().message();
    auto r = rt->set_volatile(base, 8 * kPage);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_EQ(rt->region_stats(base).value().volatile_bytes, 0u);
    EXPECT_EQ(rt->stats().committed, 8 * kPage);
}

// A fork child's copy of a runtime with purgeable memory (and a running
// purge worker) is inert like any other: every purgeable call is ECHILD,
// destroying the copy touches nothing of the parent's, and the parent's
// volatility is unchanged.
TEST(PurgeableFork, ChildCopyIsInert)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = static_cast<char*>(rt->allocate_purgeable(8 * kPage).value());
    fill(p, 8, 1);
    ASSERT_TRUE(rt->set_volatile(p, 4 * kPage));
    ForkedChild child([&](ForkedChild& self) {
        auto echild = [&](const char* call, const auto& result) {
            self.check(!result && result.error().code() == ECHILD, "%s in the child: %s", call,
                result ? "succeeded" : result.error().message());
        };
        echild("allocate_purgeable", rt->allocate_purgeable(kPage));
        echild("set_volatile", rt->set_volatile(p + 4 * kPage, kPage));
        echild("set_nonvolatile", rt->set_nonvolatile(p, kPage));
        echild("purge", rt->purge(kPurgeAll));
        echild("set_purge_callbacks", rt->set_purge_callbacks({}));
        self.check(holds(p, 8, 1), "the child's copy lost bytes");
        rt.reset(); // the copy's destructor must not touch the parent's worker
    });
    ASSERT_TRUE(child.started());
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();
    EXPECT_EQ(rt->region_stats(p).value().volatile_bytes, 4 * kPage);
    ASSERT_EQ(rt->purge(kPurgeAll).value().purged_bytes, 4 * kPage);
    auto r = rt->set_nonvolatile(p, 8 * kPage).value();
    ASSERT_EQ(r.purged_ranges.size(), 1u);
    EXPECT_EQ(r.purged_ranges[0], range(p, 0, 4));
    EXPECT_TRUE(holds(p + 4 * kPage, 4, 5));
}
