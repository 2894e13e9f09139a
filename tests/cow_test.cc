// Copy-on-write: clones of clonable regions (docs/cow.md). Bytes on both
// sides after interleaved writes, clones of clones, physical sharing read
// from /proc/self/smaps, fork children, bad input.
#include "support/process_output.h"
#include "support/memfd_count.h"
#include "support/smaps.h"
#include "test_support.h"

#include <faultline/faultline.h>

#include <atomic>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace faultline;
using faultline::testing::anonymous_kb;
using faultline::testing::memfd_count;
using faultline::testing::kPage;
using faultline::testing::run_command;

namespace {

void fill(char* p, size_t pages, char seed)
{
    for (size_t i = 0; i < pages; ++i)
        memset(p + i * kPage, char(seed + i), kPage);
}

// The first page whose sampled bytes are not all `seed + page`, or `pages`
// when every page matches.
size_t first_mismatch(const char* p, size_t pages, char seed)
{
    for (size_t i = 0; i < pages; ++i) {
        const char want = char(seed + i);
        for (size_t b = 0; b < kPage; b += 511)
            if (p[i * kPage + b] != want)
                return i;
    }
    return pages;
}

} // namespace

TEST(Cow, CloneHasTheContentsAndBothSidesDiverge)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 64;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable, .name = "cow-src" });
    ASSERT_TRUE(r) << r.error().message();
    auto* a = static_cast<char*>(*r);
    fill(a, pages, 1);
    auto c = rt->clone(a);
    ASSERT_TRUE(c) << c.error().message();
    auto* b = static_cast<char*>(*c);
    EXPECT_NE(a, b);
    EXPECT_EQ(first_mismatch(b, pages, 1), pages);
    // Interleaved writes: each side sees its own only.
    a[3 * kPage + 10] = 'A';
    b[7 * kPage + 20] = 'B';
    a[7 * kPage + 30] = 'a';
    EXPECT_EQ(b[3 * kPage + 10], char(1 + 3));
    EXPECT_EQ(a[7 * kPage + 20], char(1 + 7));
    EXPECT_EQ(b[7 * kPage + 30], char(1 + 7));
    EXPECT_EQ(a[3 * kPage + 10], 'A');
    EXPECT_EQ(b[7 * kPage + 20], 'B');
    auto st = rt->region_stats(b);
    ASSERT_TRUE(st);
    EXPECT_STREQ(st->object_kind, "cow");
    EXPECT_STREQ(rt->region_stats(a)->object_kind, "cow");
    EXPECT_EQ(st->name, "cow-src");
    // Unmapping either side leaves the other whole.
    ASSERT_TRUE(rt->unmap(a, pages * kPage));
    EXPECT_EQ(first_mismatch(b, pages, 1), pages) << "(the clone's own write is at a byte not sampled)";
    EXPECT_EQ(b[7 * kPage + 20], 'B');
    EXPECT_EQ(b[3 * kPage + 10], char(1 + 3));
    EXPECT_EQ(b[8 * kPage], char(1 + 8));
}

TEST(Cow, ARegionNeverClonedIsClonableKindAndZeroFilled)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = 16 * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    for (size_t i = 0; i < 16; ++i)
        EXPECT_EQ(p[i * kPage + 7], 0);
    p[5 * kPage] = 5;
    EXPECT_STREQ(rt->region_stats(p)->object_kind, "clonable");
    EXPECT_EQ(rt->region_stats(p)->chain_depth, 0u);
    ASSERT_TRUE(rt->discard(p + 5 * kPage, kPage));
    EXPECT_EQ(p[5 * kPage], 0);
}

TEST(Cow, ReadingAWholeCloneDuplicatesNoMemoryAndWritesCopyOnlyTheirPages)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 1024; // 4 MiB
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<char*>(*r);
    fill(a, pages, 3);
    auto c = rt->clone(a);
    ASSERT_TRUE(c);
    auto* b = static_cast<char*>(*c);
    EXPECT_EQ(first_mismatch(b, pages, 3), pages);
    EXPECT_EQ(first_mismatch(a, pages, 3), pages);
    EXPECT_EQ(anonymous_kb(b, pages * kPage), 0) << "reading the clone must share the frozen pages";
    EXPECT_EQ(anonymous_kb(a, pages * kPage), 0) << "reading the original must share them too";
    for (size_t i = 0; i < pages; i += 4)
        b[i * kPage] = 'w';
    EXPECT_EQ(anonymous_kb(b, pages * kPage), long(pages / 4 * kPage / 1024)) << "one private copy per page written";
    EXPECT_EQ(anonymous_kb(a, pages * kPage), 0);
    // The statistics say the same, from the page tables.
    auto st = rt->region_stats(b);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->chain_depth, 1u);
    EXPECT_EQ(st->cow_private_pages, pages / 4);
    EXPECT_EQ(st->cow_shared_pages, pages - pages / 4);
    EXPECT_EQ(st->amount_dirty, pages / 4 * kPage);
    EXPECT_EQ(st->amount_resident, pages * kPage);
    auto sa = rt->region_stats(a);
    EXPECT_EQ(sa->cow_private_pages, 0u);
    EXPECT_EQ(sa->cow_shared_pages, pages);
    const std::string json = rt->to_json();
    EXPECT_NE(json.find("\"cow\":{\"shared_pages\":" + std::to_string(pages - pages / 4) + ",\"private_pages\":" + std::to_string(pages / 4) + ",\"chain_depth\":1}"), std::string::npos) << json;
}

TEST(Cow, ClonesOfClonesWithWritesAtEveryLevel)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 32;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    std::vector<char*> level { static_cast<char*>(*r) };
    fill(level[0], pages, 10);
    // Each level writes its own page, then is cloned: the clone has every
    // write above it, none below it, and writes of its own after.
    for (size_t d = 1; d <= 4; ++d) {
        level[d - 1][d * kPage] = char('0' + d);
        auto c = rt->clone(level[d - 1]);
        ASSERT_TRUE(c) << "level " << d << ": " << c.error().message();
        level.push_back(static_cast<char*>(*c));
    }
    for (size_t d = 0; d < level.size(); ++d)
        level[d][20 * kPage] = char('a' + d);
    for (size_t d = 0; d < level.size(); ++d) {
        for (size_t w = 1; w <= 4; ++w) {
            // Page w was written at level w-1 before level w was cloned.
            const char want = w <= d ? char('0' + w) : (w == d + 1 ? char('0' + w) : char(10 + w));
            EXPECT_EQ(level[d][w * kPage], want) << "level " << d << " page " << w;
        }
        EXPECT_EQ(level[d][20 * kPage], char('a' + d)) << "level " << d;
        EXPECT_EQ(level[d][21 * kPage + 9], char(10 + 21));
    }
    // A fresh clone of a clone nobody wrote since is another view: O(1),
    // nothing copied.
    auto fresh = rt->clone(level[4]);
    ASSERT_TRUE(fresh);
    auto again = rt->clone(*fresh);
    ASSERT_TRUE(again);
    EXPECT_EQ(static_cast<char*>(*again)[20 * kPage], char('a' + 4));
    EXPECT_EQ(anonymous_kb(*again, pages * kPage), 0);
}

TEST(Cow, RepeatedCloneAndUnmapReturnsItsMemory)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 64;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<char*>(*r);
    fill(a, pages, 4);
    const int before = memfd_count();
    for (int i = 0; i < 100; ++i) {
        a[(i % pages) * kPage] = char(i);
        auto c = rt->clone(a);
        ASSERT_TRUE(c) << i;
        auto* b = static_cast<char*>(*c);
        ASSERT_EQ(b[(i % pages) * kPage], char(i));
        b[0] = 'x';
        ASSERT_TRUE(rt->unmap(b, pages * kPage));
    }
    EXPECT_LE(memfd_count(), before + 1) << "each clone's memfd goes with its last view";
    EXPECT_EQ(a[0], char(64 * 1));
}

TEST(Cow, WritersRacingACloneLoseNothing)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 256;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<volatile uint64_t*>(*r);
    const size_t words = pages * kPage / sizeof(uint64_t);
    std::atomic<bool> stop { false };
    std::vector<std::thread> writers;
    std::vector<uint64_t> last(4, 0);
    for (size_t t = 0; t < 4; ++t)
        writers.emplace_back([&, t] {
            uint64_t n = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                ++n;
                for (size_t w = t; w < words; w += 4 * 64)
                    a[w] = n;
            }
            last[t] = n;
        });
    std::vector<void*> clones;
    for (int i = 0; i < 6; ++i) {
        auto c = rt->clone(const_cast<uint64_t*>(a));
        ASSERT_TRUE(c);
        clones.push_back(*c);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    stop = true;
    for (auto& w : writers)
        w.join();
    // Every writer's last pass is in the source, whole.
    for (size_t t = 0; t < 4; ++t)
        for (size_t w = t; w < words; w += 4 * 64)
            ASSERT_EQ(a[w], last[t]) << "writer " << t << " word " << w;
    // Each clone holds values some pass wrote (never more than the last).
    for (void* c : clones)
        for (size_t t = 0; t < 4; ++t)
            EXPECT_LE(static_cast<uint64_t*>(c)[t], last[t]);
}

TEST(Cow, AForkChildGetsItsOwnCopyOfALiveClonableRegion)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 16;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<volatile char*>(*r);
    for (size_t i = 0; i < 8; ++i) // half the pages touched before the fork
        a[i * kPage] = char(i + 1);
    int to_parent[2], to_child[2];
    ASSERT_EQ(pipe(to_parent), 0);
    ASSERT_EQ(pipe(to_child), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int bad = 0;
        for (size_t i = 0; i < pages; ++i)
            bad += a[i * kPage] != (i < 8 ? char(i + 1) : 0);
        for (size_t i = 0; i < pages; ++i)
            a[i * kPage + 1] = 'c'; // must not reach the parent
        (void)!write(to_parent[1], "x", 1);
        char ch;
        (void)!read(to_child[0], &ch, 1); // the parent has written
        for (size_t i = 0; i < pages; ++i)
            bad += a[i * kPage + 2] != 0;
        _exit(bad);
    }
    char ch;
    ASSERT_EQ(read(to_parent[0], &ch, 1), 1);
    for (size_t i = 0; i < pages; ++i) {
        EXPECT_EQ(a[i * kPage + 1], 0) << "the child's write reached the parent at page " << i;
        a[i * kPage + 2] = 'p';
    }
    ASSERT_EQ(write(to_child[1], "x", 1), 1);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "pages wrong in the child";
    for (int fd : { to_parent[0], to_parent[1], to_child[0], to_child[1] })
        close(fd);
    // The region goes on: still private, still clonable.
    a[15 * kPage] = 'z';
    auto c = rt->clone(const_cast<char*>(a));
    ASSERT_TRUE(c);
    EXPECT_EQ(static_cast<char*>(*c)[15 * kPage], 'z');
    EXPECT_EQ(static_cast<char*>(*c)[3 * kPage], 4);
}

TEST(Cow, DiscardOnACloneReadsZerosNotTheFrozenPages)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<char*>(*r);
    fill(a, 8, 1);
    auto c = rt->clone(a);
    ASSERT_TRUE(c);
    auto* b = static_cast<char*>(*c);
    ASSERT_TRUE(rt->discard(b + 2 * kPage, 2 * kPage));
    EXPECT_EQ(b[2 * kPage], 0);
    EXPECT_EQ(b[3 * kPage + 100], 0);
    EXPECT_EQ(b[4 * kPage], char(1 + 4));
    EXPECT_EQ(a[2 * kPage], char(1 + 2));
    // A clone of the discarded view has the zeros too.
    auto d = rt->clone(b);
    ASSERT_TRUE(d);
    EXPECT_EQ(static_cast<char*>(*d)[2 * kPage], 0);
    EXPECT_EQ(static_cast<char*>(*d)[4 * kPage], char(1 + 4));
}

// Discarded ranges of a view are fresh anonymous memory over the frozen
// pages; until touched they have no page at all, so the page tables alone
// cannot tell them from frozen pages the view never wrote. A clone of such
// a view once was one more view of the frozen object, and read the frozen
// bytes where its source reads zeros (found by the c_api fuzzer through a
// rollback, below).
TEST(Cow, ACloneOfAViewDiscardedAndNotTouchedSinceReadsZerosThere)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<char*>(*r);
    fill(a, 8, 1);
    auto first = rt->clone(a); // freezes
    ASSERT_TRUE(first);
    ASSERT_TRUE(rt->discard(a + 2 * kPage, 3 * kPage)); // not read before the clone
    auto c = rt->clone(a);
    ASSERT_TRUE(c) << c.error().message();
    auto* b = static_cast<char*>(*c);
    for (size_t page = 0; page < 8; ++page)
        EXPECT_EQ(b[page * kPage + 7], page >= 2 && page < 5 ? 0 : char(1 + page)) << "page " << page;
    EXPECT_EQ(a[3 * kPage], 0);
    EXPECT_EQ(static_cast<char*>(*first)[3 * kPage], char(1 + 3)) << "the first clone never changed";
}

TEST(Cow, BadInputIsRefusedAndChangesNothing)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto plain = rt->map_anonymous({ .size = 4 * kPage });
    ASSERT_TRUE(plain);
    auto e = rt->clone(*plain);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), EINVAL) << "a region mapped without Clonable";
    auto r = rt->map_anonymous({ .size = 4 * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    p[0] = 1;
    e = rt->clone(p + kPage);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), EINVAL) << "not the start of a region";
    int outside = 0;
    e = rt->clone(&outside);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), ENOENT);
    EXPECT_STREQ(rt->region_stats(p)->object_kind, "clonable") << "a refused clone froze nothing";
    for (RegionFlags bad : { RegionFlags::Clonable | RegionFlags::Shared, RegionFlags::Clonable | RegionFlags::Stack,
             RegionFlags::Clonable | RegionFlags::Purgeable }) {
        auto m = rt->map_anonymous({ .size = 4 * kPage, .flags = bad });
        ASSERT_FALSE(m);
        EXPECT_EQ(m.error().code(), EINVAL);
    }
    auto sealed = rt->map_anonymous({ .size = 4 * kPage, .flags = RegionFlags::Clonable | RegionFlags::Immutable });
    ASSERT_TRUE(sealed);
    e = rt->clone(*sealed);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), EPERM);
    EXPECT_EQ(p[0], 1);
}

TEST(Cow, TheCloneIsCommittedLikeAMapping)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .commit_limit = 96 * kPage });
    auto r = rt->map_anonymous({ .size = 64 * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    static_cast<char*>(*r)[0] = 9;
    auto e = rt->clone(*r);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), ENOMEM) << "64 + 64 pages against a limit of 96";
    EXPECT_STREQ(rt->region_stats(*r)->object_kind, "clonable");
    auto loose = rt->map_anonymous({ .size = 64 * kPage, .flags = RegionFlags::Clonable | RegionFlags::NoReserve });
    ASSERT_TRUE(loose);
    auto c = rt->clone(*loose);
    ASSERT_TRUE(c) << "a NoReserve region's clone commits nothing";
    EXPECT_TRUE(has(rt->region_stats(*c)->flags, RegionFlags::NoReserve));
}

TEST(Cow, TheCApiClones)
{
    faultline_runtime_t rt = 0;
    if (int rc = faultline_create(nullptr, &rt); rc < 0)
        GTEST_SKIP() << "no runtime here: " << strerror(-rc);
    void* p = nullptr;
    ASSERT_EQ(faultline_map(rt, nullptr, 4 * kPage, FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE, FAULTLINE_REGION_CLONABLE, "c-src", &p), 0);
    static_cast<char*>(p)[kPage] = 42;
    void* c = nullptr;
    ASSERT_EQ(faultline_clone(rt, p, "the-clone", &c), 0);
    EXPECT_EQ(static_cast<char*>(c)[kPage], 42);
    static_cast<char*>(c)[2 * kPage] = 1;
    faultline_region_stats st {};
    ASSERT_EQ(faultline_get_region_stats(rt, c, &st), 0);
    EXPECT_EQ(st.chain_depth, 1u);
    EXPECT_EQ(st.cow_private_pages, 1u);
    EXPECT_EQ(faultline_clone(rt, p, nullptr, nullptr), -EINVAL);
    EXPECT_EQ(faultline_clone(rt, static_cast<char*>(p) + kPage, nullptr, &c), -EINVAL);
    faultline_destroy(rt);
}

TEST(CowSnapshot, RollbackRestoresExactBytesAndTheSnapshotStaysUsable)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 256;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<char*>(*r);
    fill(a, pages, 2);
    auto s = rt->snapshot(a, "snap");
    ASSERT_TRUE(s) << s.error().message();
    auto* snap = static_cast<const char*>(*s);
    auto st = rt->region_stats(*s);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->access, Access::Read);
    EXPECT_EQ(st->max_access, Access::Read);
    auto widen = rt->protect(*s, pages * kPage, Access::ReadWrite);
    ASSERT_FALSE(widen);
    EXPECT_EQ(widen.error().code(), EACCES) << "a snapshot never becomes writable";
    for (int round = 0; round < 3; ++round) {
        for (size_t i = size_t(round); i < pages; i += 10)
            memset(a + i * kPage, 'x', kPage);
        EXPECT_EQ(first_mismatch(snap, pages, 2), pages) << "the snapshot does not change";
        ASSERT_TRUE(rt->rollback(a, *s));
        EXPECT_EQ(first_mismatch(a, pages, 2), pages) << "round " << round;
        EXPECT_EQ(anonymous_kb(a, pages * kPage), 0) << "the written pages were dropped";
    }
}

TEST(CowSnapshot, RollbackAfterDiscardAndAfterASnapshotOfAWrittenView)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 32;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<char*>(*r);
    fill(a, pages, 5);
    auto first = rt->clone(a); // freezes
    ASSERT_TRUE(first);
    // Written since the freeze: the snapshot copies the region's data.
    a[4 * kPage] = 'n';
    auto s = rt->snapshot(a);
    ASSERT_TRUE(s);
    a[4 * kPage] = 'm';
    a[9 * kPage] = 'm';
    ASSERT_TRUE(rt->discard(a + 12 * kPage, 4 * kPage));
    EXPECT_EQ(a[13 * kPage], 0);
    ASSERT_TRUE(rt->rollback(a, *s));
    EXPECT_EQ(a[4 * kPage], 'n');
    EXPECT_EQ(a[9 * kPage], char(5 + 9));
    EXPECT_EQ(a[13 * kPage], char(5 + 13));
    // Now the region views the snapshot's object: the next rollback drops
    // only what is written.
    a[20 * kPage] = 'q';
    ASSERT_TRUE(rt->discard(a + 21 * kPage, kPage));
    ASSERT_TRUE(rt->rollback(a, *s));
    EXPECT_EQ(a[20 * kPage], char(5 + 20));
    EXPECT_EQ(a[21 * kPage], char(5 + 21));
    EXPECT_EQ(static_cast<char*>(*first)[4 * kPage], char(5 + 4)) << "the first clone never changed";
}

// A snapshot is read-only, but a range of it can be discarded: it reads
// zeros there from then on, and a rollback to it must restore those zeros
// (it once remapped the region over the frozen pages the snapshot no longer
// shows — found by the c_api fuzzer).
TEST(CowSnapshot, RollbackToASnapshotWithADiscardedRangeRestoresItsZeros)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 16;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<char*>(*r);
    fill(a, pages, 3);
    auto s = rt->snapshot(a);
    ASSERT_TRUE(s) << s.error().message();
    auto* snap = static_cast<char*>(*s);
    ASSERT_TRUE(rt->discard(snap + 4 * kPage, 4 * kPage));
    a[1 * kPage] = 'w';
    ASSERT_TRUE(rt->rollback(a, *s));
    for (size_t page = 0; page < pages; ++page) {
        const char want = page >= 4 && page < 8 ? 0 : char(3 + page);
        EXPECT_EQ(a[page * kPage + 9], want) << "page " << page;
        EXPECT_EQ(snap[page * kPage + 9], want) << "snapshot page " << page;
    }
}

TEST(CowSnapshot, ASnapshotReadWhileWritersRunIsStable)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 512;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<volatile uint64_t*>(*r);
    const size_t words = pages * kPage / sizeof(uint64_t);
    std::atomic<bool> stop { false };
    std::atomic<uint64_t> passes { 0 };
    std::thread writer([&] {
        for (uint64_t n = 1; !stop.load(std::memory_order_relaxed); ++n) {
            for (size_t w = 0; w < words; w += 64)
                a[w] = n;
            passes.store(n);
        }
    });
    while (passes.load() < 2)
        std::this_thread::yield();
    auto s = rt->snapshot(const_cast<uint64_t*>(a));
    ASSERT_TRUE(s);
    auto* snap = static_cast<const volatile uint64_t*>(*s);
    auto sum = [&] {
        uint64_t total = 0;
        for (size_t w = 0; w < words; w += 64)
            total += snap[w] * (w + 1);
        return total;
    };
    const uint64_t once = sum();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(sum(), once) << "a snapshot read while the region changes must not change";
    stop = true;
    writer.join();
    // Every word is from one pass or the next (the snapshot's moment fell
    // inside a pass), never from later.
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t w = 0; w < words; w += 64) {
        lo = std::min(lo, uint64_t(snap[w]));
        hi = std::max(hi, uint64_t(snap[w]));
    }
    EXPECT_LE(hi - lo, 1u);
    EXPECT_LT(hi, passes.load() + 1);
}

TEST(CowSnapshot, BadRollbacksAreRefused)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r1 = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Clonable });
    auto r2 = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r1 && r2);
    auto* a = static_cast<char*>(*r1);
    a[0] = 1;
    auto s1 = rt->snapshot(*r1);
    auto s2 = rt->snapshot(*r2);
    auto c1 = rt->clone(*r1);
    ASSERT_TRUE(s1 && s2 && c1);
    auto code = [](Result<void> r) { return r ? 0 : r.error().code(); };
    EXPECT_EQ(code(rt->rollback(*r1, *s2)), EINVAL) << "a snapshot of another region";
    EXPECT_EQ(code(rt->rollback(*r1, *c1)), EINVAL) << "a clone is not a snapshot";
    EXPECT_EQ(code(rt->rollback(a + kPage, *s1)), EINVAL) << "not the start of the region";
    int outside = 0;
    EXPECT_EQ(code(rt->rollback(&outside, *s1)), ENOENT);
    // Split: the region the snapshot was of is gone.
    ASSERT_TRUE(rt->protect(a + 4 * kPage, 4 * kPage, Access::Read));
    EXPECT_EQ(code(rt->rollback(a, *s1)), EINVAL) << "rollback after a split";
    ASSERT_TRUE(rt->unmap(*s2, 8 * kPage));
    EXPECT_EQ(code(rt->rollback(*r2, *s2)), ENOENT) << "the snapshot was unmapped";
    // A new region where the old one was is another region.
    auto s3 = rt->snapshot(*r2);
    ASSERT_TRUE(s3);
    ASSERT_TRUE(rt->unmap(*r2, 8 * kPage));
    auto again = rt->map_anonymous({ .size = 8 * kPage, .address = *r2, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(code(rt->rollback(*again, *s3)), EINVAL) << "a snapshot of the region that was there before";
    EXPECT_EQ(a[0], 1);
}

TEST(CowSnapshot, TheCApiSnapshotsAndRollsBack)
{
    faultline_runtime_t rt = 0;
    if (int rc = faultline_create(nullptr, &rt); rc < 0)
        GTEST_SKIP() << "no runtime here: " << strerror(-rc);
    void* p = nullptr;
    ASSERT_EQ(faultline_map(rt, nullptr, 4 * kPage, FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE, FAULTLINE_REGION_CLONABLE, "c-snap", &p), 0);
    static_cast<char*>(p)[0] = 7;
    void* s = nullptr;
    ASSERT_EQ(faultline_snapshot(rt, p, nullptr, &s), 0);
    static_cast<char*>(p)[0] = 8;
    ASSERT_EQ(faultline_rollback(rt, p, s), 0);
    EXPECT_EQ(static_cast<char*>(p)[0], 7);
    EXPECT_EQ(faultline_rollback(rt, s, p), -EINVAL);
    EXPECT_EQ(faultline_snapshot(rt, p, nullptr, nullptr), -EINVAL);
    faultline_destroy(rt);
}

TEST(CowSnapshotDeathTest, WritingASnapshotIsSigsegv)
{
    ::testing::FLAGS_gtest_death_test_style = "threadsafe";
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = 4 * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    static_cast<char*>(*r)[0] = 1;
    auto s = rt->snapshot(*r);
    ASSERT_TRUE(s);
    EXPECT_EXIT(static_cast<volatile char*>(*s)[0] = 2, ::testing::KilledBySignal(SIGSEGV), "");
}

TEST(CowExample, TheSnapshotExampleVerifiesItsFile)
{
    // examples/cow_snapshot.cc, as a user would run it (a smaller table).
    char dir[] = "/tmp/faultline-cow-example-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string file = std::string(dir) + "/table.bin";
    const std::string cmd = std::string(FAULTLINE_COW_SNAPSHOT_EXAMPLE_PATH) + " 200000 " + file + " 2>&1";
    const auto [out, status] = run_command(cmd);
    rmdir(dir);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 1 && out.find("faultline: ") == 0)
        GTEST_SKIP() << "the example could not start a runtime here: " << out;
    ASSERT_TRUE(WIFEXITED(status)) << out;
    EXPECT_EQ(WEXITSTATUS(status), 0) << out;
    EXPECT_NE(out.find("file == snapshot: yes; rollback: done"), std::string::npos) << out;
    EXPECT_EQ(access(file.c_str(), F_OK), -1) << "the example removes its file";
}
