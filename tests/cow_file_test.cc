// Copy-on-write of private file regions (issue: copy-on-write, part 4;
// runtime/private_file_clones.h): a clone holds the source's written pages
// and the file's bytes elsewhere, both sides diverge, the file never
// changes; clones of clones; snapshot and rollback; bad input.
#include "os/fault_injection.h"
#include "support/guarded_access.h"
#include "support/smaps.h"
#include "support/temp_file.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <cerrno>
#include <sys/mman.h>

namespace faultline::testing {
namespace {

char mark(size_t page, char salt) { return char(salt + page * 3); }

void write_page(char* p, size_t page, char salt) { memset(p + page * kPage, mark(page, salt), kPage); }

bool page_marked(const char* p, size_t page, char salt)
{
    return p[page * kPage] == mark(page, salt) && p[page * kPage + kPage - 1] == mark(page, salt);
}

bool page_is_file(const char* p, size_t page, const TempFile& f)
{
    return memcmp(p + page * kPage, f.contents().data() + page * kPage, kPage) == 0;
}

class CowFile : public ::testing::TestWithParam<const char*> {};

TEST_P(CowFile, AClonedPrivateFileRegionHoldsTheWrittenPagesAndTheFileAndBothSidesDiverge)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    constexpr size_t kPages = 64;
    TempFile f(kPages * kPage, 31);
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite, .sharing = Sharing::Private,
        .name = "private", .readahead_min_pages = 1, .readahead_max_pages = 1 });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < 16; ++page)
        ASSERT_TRUE(page_is_file(p, page, f)); // read: the cache's pages
    for (size_t page = 8; page < 24; ++page)
        write_page(p, page, 'a'); // written: the region's own (8-15 read first, 16-23 not)

    auto c = rt->clone(p);
    ASSERT_TRUE(c) << c.error().message();
    char* q = static_cast<char*>(*c);
    for (size_t page = 0; page < kPages; ++page) {
        if (page >= 8 && page < 24)
            EXPECT_TRUE(page_marked(q, page, 'a')) << "page " << page << " lacks the source's write";
        else
            EXPECT_TRUE(page_is_file(q, page, f)) << "page " << page << " is not the file's";
    }
    // The clone holds copies of the written pages only: what it reads of
    // the rest is the cache's.
    EXPECT_LE(anonymous_kb(q, f.size()), long(16 * kPage / 1024));

    write_page(p, 10, 'b');
    write_page(q, 11, 'c');
    write_page(q, 40, 'c');
    EXPECT_TRUE(page_marked(q, 10, 'a')) << "the source's write reached the clone";
    EXPECT_TRUE(page_marked(p, 11, 'a')) << "the clone's write reached the source";
    EXPECT_TRUE(page_is_file(p, 40, f)) << "the clone's write reached the source";
    EXPECT_TRUE(page_marked(q, 40, 'c'));

    auto st = rt->region_stats(q);
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_FALSE(has(st->flags, RegionFlags::Shared));
    EXPECT_EQ(st->access, Access::ReadWrite);
    ASSERT_TRUE(rt->unmap(q, f.size()));
    ASSERT_TRUE(rt->unmap(p, f.size()));
    EXPECT_TRUE(f.read_back() == f.contents()) << "a clone of a private region changed the file";
}

TEST_P(CowFile, ClonesOfClonesWithWritesAtEveryLevel)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    constexpr size_t kPages = 32;
    TempFile f(kPages * kPage + 123, 32);
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite, .sharing = Sharing::Private });
    ASSERT_TRUE(r) << r.error().message();
    std::vector<char*> levels { static_cast<char*>(*r) };
    for (size_t level = 0; level < 4; ++level) {
        write_page(levels.back(), level, char('k' + level));
        auto c = rt->clone(levels.back());
        ASSERT_TRUE(c) << c.error().message();
        levels.push_back(static_cast<char*>(*c));
    }
    // Level L saw the writes of levels 0..L-1 before its clone, and none after.
    for (size_t level = 0; level < levels.size(); ++level) {
        for (size_t page = 0; page < 4; ++page) {
            if (page < level)
                EXPECT_TRUE(page_marked(levels[level], page, char('k' + page))) << "level " << level << " page " << page;
            else if (page == level && level < 4)
                EXPECT_TRUE(page_marked(levels[level], page, char('k' + page))) << "level " << level << " page " << page;
            else
                EXPECT_TRUE(page_is_file(levels[level], page, f)) << "level " << level << " page " << page;
        }
        EXPECT_EQ(levels[level][kPages * kPage + 122], f.contents()[kPages * kPage + 122]);
        EXPECT_EQ(levels[level][kPages * kPage + 123], 0) << "past the end of the file";
    }
    for (char* l : levels)
        ASSERT_TRUE(rt->unmap(l, (kPages + 1) * kPage));
    EXPECT_TRUE(f.read_back() == f.contents());
}

TEST_P(CowFile, RollbackRestoresTheSnapshotsBytes)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    constexpr size_t kPages = 48;
    TempFile f(kPages * kPage, 33);
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite, .sharing = Sharing::Private });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < 8; ++page)
        write_page(p, page, 's');
    auto snap = rt->snapshot(p);
    ASSERT_TRUE(snap) << snap.error().message();
    const char* sp = static_cast<const char*>(*snap);
    for (size_t page = 4; page < 20; ++page)
        write_page(p, page, 't'); // over the snapshot's written pages and past them
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_TRUE(page < 8 ? page_marked(sp, page, 's') : page_is_file(sp, page, f)) << "snapshot page " << page;

    ASSERT_TRUE(rt->rollback(p, *snap));
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_TRUE(page < 8 ? page_marked(p, page, 's') : page_is_file(p, page, f)) << "page " << page << " after rollback";
    // The region stays usable and the snapshot unchanged.
    write_page(p, 2, 'u');
    EXPECT_TRUE(page_marked(sp, 2, 's'));
    ASSERT_TRUE(rt->rollback(p, *snap));
    EXPECT_TRUE(page_marked(p, 2, 's'));
    EXPECT_EXIT(const_cast<char*>(sp)[0] = 1, ::testing::KilledBySignal(SIGSEGV), "") << "a snapshot is read-only";
    EXPECT_TRUE(f.read_back() == f.contents());
}

TEST_P(CowFile, ReadersRacingARollbackSeeOnlyTheSnapshotsOrTheRegionsBytes)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    constexpr size_t kPages = 64;
    TempFile f(kPages * kPage, 34);
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite, .sharing = Sharing::Private });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < kPages; ++page)
        write_page(p, page, 'v');
    auto snap = rt->snapshot(p);
    ASSERT_TRUE(snap) << snap.error().message();
    std::atomic<bool> stop { false };
    std::atomic<size_t> wrong { 0 };
    std::thread reader([&] {
        while (!stop.load()) {
            for (size_t page = 0; page < kPages; ++page) {
                const char got = static_cast<volatile char*>(p)[page * kPage];
                if (got != mark(page, 'v') && got != mark(page, 'w'))
                    wrong.fetch_add(1);
            }
        }
    });
    for (int round = 0; round < 50; ++round) {
        for (size_t page = 0; page < kPages; page += 3)
            write_page(p, page, 'w');
        ASSERT_TRUE(rt->rollback(p, *snap));
    }
    stop = true;
    reader.join();
    EXPECT_EQ(wrong.load(), 0u) << "a reader saw the file's bytes (or zeros) where both versions were written";
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_TRUE(page_marked(p, page, 'v')) << "page " << page;
}

INSTANTIATE_TEST_SUITE_P(Modes, CowFile, ::testing::Values("", "minor", "pagemap_scan"),
    [](const auto& info) { return std::string(*info.param ? info.param : "default"); });

TEST(CowFileBadInput, SharedFileRegionsAndRollbacksAcrossKindsAreRefused)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    TempFile f(8 * kPage, 35);
    auto shared = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite });
    ASSERT_TRUE(shared) << shared.error().message();
    auto c = rt->clone(*shared);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code(), EINVAL) << "a shared file region has no private copy to make";
    auto priv = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite, .sharing = Sharing::Private });
    ASSERT_TRUE(priv) << priv.error().message();
    auto other = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite, .sharing = Sharing::Private });
    ASSERT_TRUE(other) << other.error().message();
    auto snap = rt->snapshot(*priv);
    ASSERT_TRUE(snap) << snap.error().message();
    auto cross = rt->rollback(*other, *snap);
    ASSERT_FALSE(cross);
    EXPECT_EQ(cross.error().code(), EINVAL) << "a snapshot of another region";
    auto anon = rt->map_anonymous({ .size = f.size(), .flags = RegionFlags::Clonable });
    ASSERT_TRUE(anon);
    auto kinds = rt->rollback(*anon, *snap);
    ASSERT_FALSE(kinds);
    EXPECT_EQ(kinds.error().code(), EINVAL);
    // Split since the snapshot: refused.
    ASSERT_TRUE(rt->unmap(static_cast<char*>(*priv) + 4 * kPage, 4 * kPage));
    auto split = rt->rollback(*priv, *snap);
    ASSERT_FALSE(split);
    EXPECT_EQ(split.error().code(), EINVAL);
}

} // namespace
} // namespace faultline::testing

namespace faultline::testing {
namespace {

// Purgeable regions (issue: purgeable memory, part 6): a clone is a copy, so
// volatility and purges are each region's own — making one side volatile and
// purging it never reaches the other.
TEST(CowPurgeable, VolatilityAndPurgesNeverCrossAClone)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kPages = 32;
    auto r = rt->allocate_purgeable(kPages * kPage, { .name = "cache" });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < 24; ++page)
        write_page(p, page, 'p'); // pages 24.. never touched
    auto c = rt->clone(p);
    ASSERT_TRUE(c) << c.error().message();
    char* q = static_cast<char*>(*c);
    auto st = rt->region_stats(q);
    ASSERT_TRUE(st);
    EXPECT_TRUE(has(st->flags, RegionFlags::Purgeable));
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_TRUE(page < 24 ? page_marked(q, page, 'p') : q[page * kPage] == 0) << "page " << page;

    // The source volatile and purged: the clone keeps every byte.
    ASSERT_TRUE(rt->set_volatile(p, kPages * kPage));
    auto purged = rt->purge(kPurgeAll);
    ASSERT_TRUE(purged) << purged.error().message();
    EXPECT_GE(purged->purged_bytes, 24 * kPage);
    for (size_t page = 0; page < 24; ++page)
        EXPECT_TRUE(page_marked(q, page, 'p')) << "the source's purge reached the clone at page " << page;
    auto nv = rt->set_nonvolatile(p, kPages * kPage);
    ASSERT_TRUE(nv);
    EXPECT_TRUE(nv->purged);

    // And the other way: the clone volatile and purged, the source (written
    // again) keeps its bytes.
    for (size_t page = 0; page < 8; ++page)
        write_page(p, page, 'r');
    ASSERT_TRUE(rt->set_volatile(q, kPages * kPage));
    ASSERT_TRUE(rt->purge(kPurgeAll));
    for (size_t page = 0; page < 8; ++page)
        EXPECT_TRUE(page_marked(p, page, 'r')) << "the clone's purge reached the source at page " << page;
    auto nvq = rt->set_nonvolatile(q, kPages * kPage);
    ASSERT_TRUE(nvq);
    EXPECT_TRUE(nvq->purged);
}

TEST(CowPurgeable, ACloneOfAPartlyPurgedRegionReadsZerosWhereTheSourceLostItsBytes)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kPages = 16;
    auto r = rt->allocate_purgeable(kPages * kPage, { .purged_access = PurgedAccess::Sigbus });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < kPages; ++page)
        write_page(p, page, 'x');
    ASSERT_TRUE(rt->set_volatile(p, 8 * kPage));
    ASSERT_TRUE(rt->purge(kPurgeAll));
    // A touch of a purged page raises SIGBUS and leaves a marker in the
    // page table: the clone must not copy it (nor fail), and reads zeros.
    for (size_t page = 0; page < 8; page += 2)
        ASSERT_EQ(guarded_access([&] { (void)*static_cast<volatile char*>(p + page * kPage); }), SIGBUS);
    auto c = rt->clone(p);
    ASSERT_TRUE(c) << c.error().message();
    char* q = static_cast<char*>(*c);
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_TRUE(page < 8 ? q[page * kPage] == 0 : page_marked(q, page, 'x')) << "page " << page;
    EXPECT_EQ(guarded_access([&] { (void)*static_cast<volatile char*>(p + 2 * kPage); }), SIGBUS)
        << "the source's purged page stays purged";
}

TEST(CowPurgeable, SnapshotAndRollbackOfAPurgeableRegion)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kPages = 16;
    auto r = rt->allocate_purgeable(kPages * kPage);
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < 8; ++page)
        write_page(p, page, 'a');
    auto snap = rt->snapshot(p);
    ASSERT_TRUE(snap) << snap.error().message();
    for (size_t page = 4; page < 12; ++page)
        write_page(p, page, 'b');
    ASSERT_TRUE(rt->rollback(p, *snap));
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_TRUE(page < 8 ? page_marked(p, page, 'a') : p[page * kPage] == 0) << "page " << page;
    // A snapshot of another kind of region is refused.
    auto anon = rt->map_anonymous({ .size = kPages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(anon);
    auto cross = rt->rollback(*anon, *snap);
    ASSERT_FALSE(cross);
    EXPECT_EQ(cross.error().code(), EINVAL);
}

// The kernel copies pages (UFFDIO_COPY) within one VMA per call; a region
// can span several — pieces of the arena with different histories do not
// always merge. A copy across two once failed with ENOENT (the c_api fuzzer
// found it as a clone that failed; here the region the copy goes into is
// split on purpose, and a rollback copies into it).
TEST(CowPurgeable, ARollbackIntoARegionSpanningTwoVmasCopiesEveryPage)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kPages = 16;
    auto r = rt->allocate_purgeable(kPages * kPage);
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < kPages; ++page)
        write_page(p, page, 'v');
    auto snap = rt->snapshot(p);
    ASSERT_TRUE(snap) << snap.error().message();
    ASSERT_TRUE(rt->discard(p, kPages * kPage));
    // A VMA flag only the second half has: two VMAs, both still registered.
    ASSERT_EQ(madvise(p + kPages / 2 * kPage, kPages / 2 * kPage, MADV_DONTFORK), 0) << strerror(errno);
    auto back = rt->rollback(p, *snap);
    ASSERT_TRUE(back) << back.error().message();
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_TRUE(page_marked(p, page, 'v')) << "page " << page;
    ASSERT_EQ(madvise(p + kPages / 2 * kPage, kPages / 2 * kPage, MADV_DOFORK), 0);
}

// A read-only purgeable region whose pages were read holds them (zeros);
// a rollback cannot write over them through its mapping and drops each
// before copying it again. Those attempts were counted over the whole run
// rather than per page, so a rollback over more than 8 such pages failed
// with EBUSY, "kept losing to its readers" (found by the c_api fuzzer).
TEST(CowPurgeable, ARollbackOfAReadOnlyRegionRestoresItsSnapshot)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kPages = 24;
    auto r = rt->allocate_purgeable(kPages * kPage, { .access = Access::Read });
    ASSERT_TRUE(r) << r.error().message();
    const char* p = static_cast<const char*>(*r);
    for (size_t page = 0; page < kPages; ++page)
        ASSERT_EQ(static_cast<const volatile char*>(p)[page * kPage], 0);
    auto snap = rt->snapshot(*r);
    ASSERT_TRUE(snap) << snap.error().message();
    auto back = rt->rollback(*r, *snap);
    ASSERT_TRUE(back) << back.error().message();
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_EQ(p[page * kPage + 5], 0) << "page " << page;
}

// The copy reads the source's pages; a source the program made unreadable
// (Access::None) must still be cloned (once EFAULT, like a clonable region's
// copies — found by the c_api fuzzer).
TEST(CowPurgeable, AnUnreadableRegionIsClonedWithItsBytes)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kPages = 12;
    auto r = rt->allocate_purgeable(kPages * kPage);
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < kPages; ++page)
        write_page(p, page, 'n');
    ASSERT_TRUE(rt->protect(p, kPages * kPage, Access::None));
    auto c = rt->clone(p);
    ASSERT_TRUE(c) << c.error().message();
    ASSERT_TRUE(rt->protect(*c, kPages * kPage, Access::Read));
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_TRUE(page_marked(static_cast<char*>(*c), page, 'n')) << "page " << page;
}

// A clone of a purgeable region whose copy fails returns the error and
// leaves nothing behind — it once hung for good instead: the half-made
// clone was unmapped while the purge lock was held, and unmapping it takes
// that lock (found by the c_api fuzzer, whose input is in its corpus).
TEST(CowPurgeable, ACloneWhoseCopyFailsReturnsTheErrorAndNeverHangs)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kPages = 16;
    auto r = rt->allocate_purgeable(kPages * kPage, { .name = "cache" });
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    for (size_t page = 0; page < kPages; ++page)
        write_page(p, page, 'f');
    const size_t regions = rt->stats().region_count;
    os::FaultInjection::arm(os::InjectOp::Copy, ENOMEM, 1000);
    std::atomic<bool> returned { false };
    Result<void*> c = fail(EINVAL, "not run");
    std::thread cloner([&] {
        c = rt->clone(p);
        returned = true;
    });
    for (int i = 0; i < 1000 && !returned; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    os::FaultInjection::disarm_all();
    if (!returned) {
        // Deadlocked: nothing can end that thread, and the runtime's
        // destruction would wait for it. Say so and end the process rather
        // than hang the suite.
        ADD_FAILURE() << "clone() of a purgeable region did not return within 10 s after its copy failed";
        fflush(stdout);
        std::_Exit(1);
    }
    cloner.join();
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code(), ENOMEM);
    EXPECT_EQ(rt->stats().region_count, regions) << "the half-made clone was left mapped";
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_TRUE(page_marked(p, page, 'f')) << "page " << page;
    auto again = rt->clone(p);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_TRUE(page_marked(static_cast<char*>(*again), 3, 'f'));
}

} // namespace
} // namespace faultline::testing
