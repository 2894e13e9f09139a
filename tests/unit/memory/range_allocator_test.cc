// RangeAllocator: best-fit placement, alignment, exact placement, freeing with
// coalescing, overflow near SIZE_MAX and a randomized comparison with a
// page-bitmap reference model. Pure bookkeeping: no memory is mapped.
#include "memory/range_allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

using faultline::memory::Range;
using faultline::memory::RangeAllocator;

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kMiB = size_t(1) << 20;
constexpr size_t kGiB = size_t(1) << 30;

uintptr_t align_up(uintptr_t a, size_t alignment) { return (a + alignment - 1) & ~(uintptr_t(alignment) - 1); }

std::vector<Range> free_ranges(const RangeAllocator& a)
{
    std::vector<Range> out;
    a.for_each_free([&](Range r) { out.push_back(r); });
    return out;
}

// "free ranges: [b,e) [b,e)" for failure messages.
std::string describe(const RangeAllocator& a)
{
    std::string s = "free ranges:";
    for (Range r : free_ranges(a)) {
        char buf[64];
        snprintf(buf, sizeof buf, " [%#lx,%#lx)", r.base, r.end());
        s += buf;
    }
    return s;
}

void expect_free_ranges(const RangeAllocator& a, const std::vector<Range>& expected)
{
    auto got = free_ranges(a);
    ASSERT_EQ(got.size(), expected.size()) << describe(a);
    size_t bytes = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].base, expected[i].base) << "range " << i << "; " << describe(a);
        EXPECT_EQ(got[i].size, expected[i].size) << "range " << i << "; " << describe(a);
        bytes += expected[i].size;
    }
    EXPECT_EQ(a.free_range_count(), expected.size());
    EXPECT_EQ(a.free_bytes(), bytes);
}

template <typename T>
int error_of(const faultline::Result<T>& r)
{
    return r ? 0 : r.error().code();
}

constexpr uintptr_t kBase = 0x40000000; // 1 GiB-aligned, so page offsets give known alignments

} // namespace

// --- construction -----------------------------------------------------------

TEST(RangeAllocator, StartsWithOneFreeRange)
{
    RangeAllocator a(kBase, 64 * kPage, kPage);
    EXPECT_EQ(a.base(), kBase);
    EXPECT_EQ(a.size(), 64 * kPage);
    expect_free_ranges(a, { { kBase, 64 * kPage } });
}

TEST(RangeAllocator, EmptyArenaHasNothingToGive)
{
    RangeAllocator a(kBase, 0, kPage);
    expect_free_ranges(a, {});
    EXPECT_EQ(error_of(a.allocate_anywhere(kPage, kPage)), ENOMEM);
    EXPECT_EQ(error_of(a.allocate_specific(kBase, kPage)), EINVAL);
    EXPECT_EQ(error_of(a.free({ kBase, kPage })), EINVAL);
}

// --- allocate_anywhere ------------------------------------------------------

TEST(RangeAllocator, AllocateAnywhereTakesFromTheStartOfTheOnlyRange)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    for (size_t i = 0; i < 4; ++i) {
        auto r = a.allocate_anywhere(2 * kPage, kPage);
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(r->base, kBase + i * 2 * kPage);
        EXPECT_EQ(r->size, 2 * kPage);
        EXPECT_EQ(a.free_bytes(), (16 - 2 * (i + 1)) * kPage);
        EXPECT_EQ(a.free_range_count(), 1u);
    }
    expect_free_ranges(a, { { kBase + 8 * kPage, 8 * kPage } });
}

TEST(RangeAllocator, AllocateAnywhereRejectsBadSizes)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    EXPECT_EQ(error_of(a.allocate_anywhere(0, kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_anywhere(1, kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_anywhere(kPage - 1, kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_anywhere(kPage + 1, kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_anywhere(std::numeric_limits<size_t>::max(), kPage)), EINVAL);
    expect_free_ranges(a, { { kBase, 16 * kPage } });
}

TEST(RangeAllocator, AllocateAnywhereRejectsBadAlignments)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    for (size_t alignment : { size_t(0), size_t(1), kPage / 2, kPage - 1, kPage + 1, 3 * kPage, 6 * kPage,
             kPage + kPage / 2, std::numeric_limits<size_t>::max() })
        EXPECT_EQ(error_of(a.allocate_anywhere(kPage, alignment)), EINVAL) << "alignment " << alignment;
    expect_free_ranges(a, { { kBase, 16 * kPage } });
}

TEST(RangeAllocator, AllocateAnywhereWholeArenaThenNothingLeft)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    EXPECT_EQ(error_of(a.allocate_anywhere(17 * kPage, kPage)), ENOMEM);
    auto r = a.allocate_anywhere(16 * kPage, kPage);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->base, kBase);
    EXPECT_EQ(r->size, 16 * kPage);
    expect_free_ranges(a, {});
    EXPECT_EQ(error_of(a.allocate_anywhere(kPage, kPage)), ENOMEM);
    ASSERT_TRUE(a.free(*r));
    expect_free_ranges(a, { { kBase, 16 * kPage } });
}

TEST(RangeAllocator, AllocateAnywhereAlignsInsideAnUnalignedRange)
{
    // Base is one page past a 16-page boundary.
    RangeAllocator a(kBase + kPage, 64 * kPage, kPage);
    auto r = a.allocate_anywhere(2 * kPage, 16 * kPage);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->base, kBase + 16 * kPage);
    EXPECT_EQ(r->size, 2 * kPage);
    expect_free_ranges(a, { { kBase + kPage, 15 * kPage }, { kBase + 18 * kPage, 47 * kPage } });
}

TEST(RangeAllocator, LargeAlignmentsInABigArena)
{
    // 64 GiB of pure bookkeeping starting one page past a 2 MiB boundary.
    const uintptr_t base = 0x7f0000001000;
    const size_t size = 64 * kGiB;
    RangeAllocator a(base, size, kPage);

    auto p2m = a.allocate_anywhere(kPage, 2 * kMiB);
    ASSERT_TRUE(p2m) << p2m.error().message();
    EXPECT_EQ(p2m->base, align_up(base, 2 * kMiB));
    EXPECT_EQ(p2m->base, 0x7f0000200000u);
    EXPECT_EQ(a.free_range_count(), 2u);
    EXPECT_EQ(a.free_bytes(), size - kPage);

    auto p1g = a.allocate_anywhere(kPage, kGiB);
    ASSERT_TRUE(p1g) << p1g.error().message();
    EXPECT_EQ(p1g->base, 0x7f0040000000u);
    EXPECT_EQ(p1g->base % kGiB, 0u);
    EXPECT_EQ(a.free_range_count(), 3u);

    // Page alignment: best fit is the small leftover below the 2 MiB page.
    auto small = a.allocate_anywhere(kPage, kPage);
    ASSERT_TRUE(small) << small.error().message();
    EXPECT_EQ(small->base, base);

    // A whole gigabyte at gigabyte alignment lands on the next boundary.
    auto g = a.allocate_anywhere(kGiB, kGiB);
    ASSERT_TRUE(g) << g.error().message();
    EXPECT_EQ(g->base, 0x7f0080000000u);
    EXPECT_EQ(g->size, kGiB);

    // 2 MiB at 2 MiB alignment: the smallest hole that holds it is the one
    // between the 2 MiB page and the first gigabyte page.
    auto m = a.allocate_anywhere(2 * kMiB, 2 * kMiB);
    ASSERT_TRUE(m) << m.error().message();
    EXPECT_EQ(m->base, 0x7f0000400000u);

    expect_free_ranges(a,
        {
            { base + kPage, 0x7f0000200000 - (base + kPage) },
            { 0x7f0000201000, 0x7f0000400000 - 0x7f0000201000 },
            { 0x7f0000600000, 0x7f0040000000 - 0x7f0000600000 },
            { 0x7f0040001000, 0x7f0080000000 - 0x7f0040001000 },
            { 0x7f00c0000000, base + size - 0x7f00c0000000 },
        });
}

TEST(RangeAllocator, GigabytePagesUntilTheArenaIsFull)
{
    const uintptr_t base = 0x7f0000001000;
    const size_t size = 64 * kGiB;
    RangeAllocator a(base, size, kPage);
    std::vector<Range> got;
    for (;;) {
        auto r = a.allocate_anywhere(kGiB, kGiB);
        if (!r) {
            EXPECT_EQ(r.error().code(), ENOMEM);
            break;
        }
        EXPECT_EQ(r->base % kGiB, 0u);
        got.push_back(*r);
        ASSERT_LE(got.size(), 64u);
    }
    // [0x7f0040000000, 0x7f1000000000) holds 63 aligned gigabytes; the
    // unaligned start and the one page at the end cannot hold another.
    ASSERT_EQ(got.size(), 63u);
    std::sort(got.begin(), got.end(), [](Range x, Range y) { return x.base < y.base; });
    for (size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(got[i].base, 0x7f0040000000 + i * kGiB);
    expect_free_ranges(a, { { base, kGiB - kPage }, { 0x7f1000000000, kPage } });
    for (Range r : got)
        ASSERT_TRUE(a.free(r));
    expect_free_ranges(a, { { base, size } });
}

TEST(RangeAllocator, AlignmentLargerThanArenaIsENOMEM)
{
    RangeAllocator a(kBase + kPage, 16 * kPage, kPage);
    // No 32-page boundary lies inside [kBase+1p, kBase+17p).
    EXPECT_EQ(error_of(a.allocate_anywhere(kPage, 32 * kPage)), ENOMEM);
    EXPECT_EQ(error_of(a.allocate_anywhere(kPage, size_t(1) << 63)), ENOMEM);
    expect_free_ranges(a, { { kBase + kPage, 16 * kPage } });
}

// The header promises ENOMEM only "when nothing fits". An arena smaller than
// the alignment can still start on an aligned address.
TEST(RangeAllocator, AlignmentLargerThanArenaStillFitsAtAnAlignedBase)
{
    RangeAllocator a(4 * kMiB, 3 * kMiB, kPage);
    auto r = a.allocate_anywhere(kMiB, 4 * kMiB);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->base, 4 * kMiB);
    expect_free_ranges(a, { { 5 * kMiB, 2 * kMiB } });
}

TEST(RangeAllocator, AlignmentSkipsAMisalignedSmallerHole)
{
    RangeAllocator a(kBase, 64 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase, 64 * kPage));
    // A 4-page hole at page 1 (holds no 4-page-aligned 4 pages) and an
    // 8-page hole at page 16.
    ASSERT_TRUE(a.free({ kBase + 1 * kPage, 4 * kPage }));
    ASSERT_TRUE(a.free({ kBase + 16 * kPage, 8 * kPage }));
    auto r = a.allocate_anywhere(4 * kPage, 4 * kPage);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->base, kBase + 16 * kPage);
    expect_free_ranges(a, { { kBase + kPage, 4 * kPage }, { kBase + 20 * kPage, 4 * kPage } });
}

// A hole smaller than size + alignment - page can still hold an aligned
// block when it happens to start aligned; "ENOMEM when nothing fits".
TEST(RangeAllocator, AlignedAllocationFindsAFittingHoleSmallerThanTheSlack)
{
    RangeAllocator a(kBase, 64 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase, 64 * kPage));
    ASSERT_TRUE(a.free({ kBase + 1 * kPage, kPage }));  // smallest, but no 4-page boundary
    ASSERT_TRUE(a.free({ kBase + 8 * kPage, 2 * kPage })); // starts on a 4-page boundary
    auto r = a.allocate_anywhere(kPage, 4 * kPage);
    ASSERT_TRUE(r) << "a 1-page block at 4-page alignment fits at page 8; " << describe(a) << ": "
                   << r.error().message();
    EXPECT_EQ(r->base, kBase + 8 * kPage);
}

// Best fit at an alignment: the smallest range that holds the block at that
// alignment, not merely one that is large enough whatever its alignment.
TEST(RangeAllocator, BestFitWithAlignmentPicksTheSmallestFittingHole)
{
    RangeAllocator a(kBase, 64 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase, 64 * kPage));
    ASSERT_TRUE(a.free({ kBase + 1 * kPage, kPage }));      // too small once aligned
    ASSERT_TRUE(a.free({ kBase + 8 * kPage, 2 * kPage }));  // fits, smallest that does
    ASSERT_TRUE(a.free({ kBase + 16 * kPage, 8 * kPage })); // fits, larger
    auto r = a.allocate_anywhere(kPage, 4 * kPage);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->base, kBase + 8 * kPage) << describe(a);
}

// --- best fit and fragmentation ---------------------------------------------

TEST(RangeAllocator, BestFitPicksSmallestHole)
{
    RangeAllocator a(kBase, 64 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase, 40 * kPage));
    // Holes of 3, 1, 2 and 5 pages, separated by taken pages, plus a free
    // tail of 24 pages at [40, 64).
    ASSERT_TRUE(a.free({ kBase + 1 * kPage, 3 * kPage }));
    ASSERT_TRUE(a.free({ kBase + 6 * kPage, 1 * kPage }));
    ASSERT_TRUE(a.free({ kBase + 10 * kPage, 2 * kPage }));
    ASSERT_TRUE(a.free({ kBase + 20 * kPage, 5 * kPage }));
    EXPECT_EQ(a.free_range_count(), 5u);
    EXPECT_EQ(a.free_bytes(), (3 + 1 + 2 + 5 + 24) * kPage);

    auto two = a.allocate_anywhere(2 * kPage, kPage);
    ASSERT_TRUE(two);
    EXPECT_EQ(two->base, kBase + 10 * kPage);
    auto one = a.allocate_anywhere(1 * kPage, kPage);
    ASSERT_TRUE(one);
    EXPECT_EQ(one->base, kBase + 6 * kPage);
    auto four = a.allocate_anywhere(4 * kPage, kPage);
    ASSERT_TRUE(four);
    EXPECT_EQ(four->base, kBase + 20 * kPage);
    // Leftover of the 5-page hole is now the smallest.
    auto one_more = a.allocate_anywhere(1 * kPage, kPage);
    ASSERT_TRUE(one_more);
    EXPECT_EQ(one_more->base, kBase + 24 * kPage);
    auto three = a.allocate_anywhere(3 * kPage, kPage);
    ASSERT_TRUE(three);
    EXPECT_EQ(three->base, kBase + 1 * kPage);
    // Only the tail remains.
    expect_free_ranges(a, { { kBase + 40 * kPage, 24 * kPage } });
    auto tail = a.allocate_anywhere(1 * kPage, kPage);
    ASSERT_TRUE(tail);
    EXPECT_EQ(tail->base, kBase + 40 * kPage);
}

TEST(RangeAllocator, BestFitTieGoesToOneOfTheEqualHoles)
{
    RangeAllocator a(kBase, 32 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase, 32 * kPage));
    ASSERT_TRUE(a.free({ kBase + 20 * kPage, 2 * kPage }));
    ASSERT_TRUE(a.free({ kBase + 4 * kPage, 2 * kPage }));
    ASSERT_TRUE(a.free({ kBase + 10 * kPage, 6 * kPage }));
    auto r = a.allocate_anywhere(2 * kPage, kPage);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->base == kBase + 4 * kPage || r->base == kBase + 20 * kPage) << std::hex << r->base;
    auto s = a.allocate_anywhere(2 * kPage, kPage);
    ASSERT_TRUE(s);
    EXPECT_TRUE(s->base == kBase + 4 * kPage || s->base == kBase + 20 * kPage) << std::hex << s->base;
    EXPECT_NE(r->base, s->base);
    expect_free_ranges(a, { { kBase + 10 * kPage, 6 * kPage } });
}

TEST(RangeAllocator, FreeEveryOtherThenCoalesceBackToOneRange)
{
    constexpr size_t n = 128;
    RangeAllocator a(kBase, n * kPage, kPage);
    std::vector<Range> blocks;
    for (size_t i = 0; i < n; ++i) {
        auto r = a.allocate_anywhere(kPage, kPage);
        ASSERT_TRUE(r) << i;
        EXPECT_EQ(r->base, kBase + i * kPage);
        blocks.push_back(*r);
    }
    expect_free_ranges(a, {});
    EXPECT_EQ(error_of(a.allocate_anywhere(kPage, kPage)), ENOMEM);

    for (size_t i = 0; i < n; i += 2)
        ASSERT_TRUE(a.free(blocks[i])) << i;
    EXPECT_EQ(a.free_range_count(), n / 2);
    EXPECT_EQ(a.free_bytes(), n / 2 * kPage);
    // Fragmented: plenty of free bytes, no two contiguous pages.
    EXPECT_EQ(error_of(a.allocate_anywhere(2 * kPage, kPage)), ENOMEM);
    EXPECT_EQ(a.free_bytes(), n / 2 * kPage);

    // Free the odd blocks from the top down: each joins two free ranges.
    for (size_t i = n - 1; i < n; i -= 2) {
        size_t before = a.free_range_count();
        ASSERT_TRUE(a.free(blocks[i])) << i;
        EXPECT_EQ(a.free_range_count(), i == n - 1 ? before : before - 1) << i;
    }
    expect_free_ranges(a, { { kBase, n * kPage } });
    auto all = a.allocate_anywhere(n * kPage, kPage);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->base, kBase);
}

TEST(RangeAllocator, FreeOddBlocksCoalescesEverything)
{
    constexpr size_t n = 128;
    RangeAllocator a(kBase + kPage, n * kPage, kPage); // even blocks start on odd pages
    std::vector<Range> blocks;
    for (size_t i = 0; i < n; ++i) {
        auto r = a.allocate_anywhere(kPage, kPage);
        ASSERT_TRUE(r) << i;
        blocks.push_back(*r);
    }
    for (size_t i = 0; i < n; i += 2)
        ASSERT_TRUE(a.free(blocks[i]));
    EXPECT_EQ(a.free_range_count(), n / 2);
    // Every free page is at an odd page number: no 2-page-aligned page free.
    EXPECT_EQ(error_of(a.allocate_anywhere(kPage, 2 * kPage)), ENOMEM);
    EXPECT_EQ(error_of(a.allocate_anywhere(2 * kPage, kPage)), ENOMEM);

    // Freeing each odd block merges it with both neighbours: the count drops
    // by one each time (the last one merges with its left neighbour only).
    for (size_t i = 1; i < n; i += 2) {
        size_t before = a.free_range_count();
        ASSERT_TRUE(a.free(blocks[i])) << i;
        EXPECT_EQ(a.free_range_count(), i + 1 < n ? before - 1 : before) << i;
    }
    expect_free_ranges(a, { { kBase + kPage, n * kPage } });
    auto all = a.allocate_anywhere(n * kPage, kPage);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->base, kBase + kPage);
}

// --- allocate_specific ------------------------------------------------------

TEST(RangeAllocator, AllocateSpecificSplitsTheFreeRange)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    auto r = a.allocate_specific(kBase + 4 * kPage, 2 * kPage);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->base, kBase + 4 * kPage);
    EXPECT_EQ(r->size, 2 * kPage);
    expect_free_ranges(a, { { kBase, 4 * kPage }, { kBase + 6 * kPage, 10 * kPage } });
}

TEST(RangeAllocator, AllocateSpecificAtTheEdges)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase, kPage));
    expect_free_ranges(a, { { kBase + kPage, 15 * kPage } });
    ASSERT_TRUE(a.allocate_specific(kBase + 15 * kPage, kPage));
    expect_free_ranges(a, { { kBase + kPage, 14 * kPage } });
    // Exactly the remaining free range.
    ASSERT_TRUE(a.allocate_specific(kBase + kPage, 14 * kPage));
    expect_free_ranges(a, {});
}

TEST(RangeAllocator, AllocateSpecificOverlapIsEEXIST)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase + 4 * kPage, 4 * kPage)); // [4, 8)
    const std::vector<Range> before = free_ranges(a);
    struct Case {
        size_t page, pages;
    } cases[] = {
        { 4, 4 },  // identical
        { 4, 1 },  // first page
        { 7, 1 },  // last page
        { 5, 2 },  // inside
        { 2, 3 },  // straddles the start
        { 2, 6 },  // encloses
        { 2, 14 }, // encloses, up to the arena's end
        { 7, 3 },  // straddles the end
        { 0, 16 }, // the whole arena
    };
    for (auto c : cases) {
        EXPECT_EQ(error_of(a.allocate_specific(kBase + c.page * kPage, c.pages * kPage)), EEXIST)
            << "[" << c.page << ", " << c.page + c.pages << ")";
    }
    auto after = free_ranges(a);
    ASSERT_EQ(after.size(), before.size());
    EXPECT_EQ(a.free_bytes(), 12 * kPage);
    // Neighbours touching the taken range are still free.
    EXPECT_TRUE(a.allocate_specific(kBase + 3 * kPage, kPage));
    EXPECT_TRUE(a.allocate_specific(kBase + 8 * kPage, kPage));
}

TEST(RangeAllocator, AllocateSpecificOutsideOrMisalignedIsEINVAL)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    EXPECT_EQ(error_of(a.allocate_specific(kBase - kPage, kPage)), EINVAL);      // below
    EXPECT_EQ(error_of(a.allocate_specific(kBase - kPage, 2 * kPage)), EINVAL);  // straddles the base
    EXPECT_EQ(error_of(a.allocate_specific(kBase + 16 * kPage, kPage)), EINVAL); // at the end
    EXPECT_EQ(error_of(a.allocate_specific(kBase + 15 * kPage, 2 * kPage)), EINVAL); // straddles the end
    EXPECT_EQ(error_of(a.allocate_specific(kBase + 100 * kPage, kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_specific(0, kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_specific(kBase, 17 * kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_specific(kBase + 1, kPage)), EINVAL);          // misaligned address
    EXPECT_EQ(error_of(a.allocate_specific(kBase + kPage / 2, kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_specific(kBase, kPage + 1)), EINVAL);          // misaligned size
    EXPECT_EQ(error_of(a.allocate_specific(kBase, kPage - 1)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_specific(kBase, 0)), EINVAL);                  // zero size
    expect_free_ranges(a, { { kBase, 16 * kPage } });
}

TEST(RangeAllocator, OutsideTakesPrecedenceOverOverlap)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase + 14 * kPage, 2 * kPage));
    // Overlaps the taken pages and also runs past the end: not inside.
    EXPECT_EQ(error_of(a.allocate_specific(kBase + 14 * kPage, 4 * kPage)), EINVAL);
}

// --- free -------------------------------------------------------------------

TEST(RangeAllocator, FreeCoalescesWithBothNeighbours)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    auto x = a.allocate_specific(kBase + 2 * kPage, 2 * kPage); // [2,4)
    auto y = a.allocate_specific(kBase + 4 * kPage, 2 * kPage); // [4,6)
    auto z = a.allocate_specific(kBase + 6 * kPage, 2 * kPage); // [6,8)
    ASSERT_TRUE(x && y && z);
    expect_free_ranges(a, { { kBase, 2 * kPage }, { kBase + 8 * kPage, 8 * kPage } });

    ASSERT_TRUE(a.free(*y)); // no free neighbour: a new range
    expect_free_ranges(a, { { kBase, 2 * kPage }, { kBase + 4 * kPage, 2 * kPage }, { kBase + 8 * kPage, 8 * kPage } });
    ASSERT_TRUE(a.free(*x)); // merges left and right
    expect_free_ranges(a, { { kBase, 6 * kPage }, { kBase + 8 * kPage, 8 * kPage } });
    ASSERT_TRUE(a.free(*z)); // merges both sides into one
    expect_free_ranges(a, { { kBase, 16 * kPage } });
}

TEST(RangeAllocator, FreeMergesWithTheRightNeighbourOnly)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase, 8 * kPage));
    ASSERT_TRUE(a.free({ kBase + 4 * kPage, 4 * kPage })); // merges into [8,16)
    expect_free_ranges(a, { { kBase + 4 * kPage, 12 * kPage } });
    ASSERT_TRUE(a.free({ kBase + kPage, 2 * kPage })); // no neighbours
    expect_free_ranges(a, { { kBase + kPage, 2 * kPage }, { kBase + 4 * kPage, 12 * kPage } });
    ASSERT_TRUE(a.free({ kBase + 3 * kPage, kPage })); // fills the gap between two ranges
    expect_free_ranges(a, { { kBase + kPage, 15 * kPage } });
    ASSERT_TRUE(a.free({ kBase, kPage })); // at the arena's base, right merge
    expect_free_ranges(a, { { kBase, 16 * kPage } });
}

TEST(RangeAllocator, FreeOfFreeSpaceIsEINVAL)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase + 4 * kPage, 4 * kPage)); // [4, 8) taken
    const auto before = free_ranges(a);
    struct Case {
        size_t page, pages;
    } cases[] = {
        { 0, 1 },  // wholly free, at the base
        { 0, 4 },  // a whole free range
        { 9, 2 },  // inside the free tail
        { 15, 1 }, // last page
        { 3, 2 },  // one free page then one taken
        { 7, 2 },  // one taken page then one free
        { 2, 8 },  // encloses the taken range
        { 0, 16 }, // the whole arena
    };
    for (auto c : cases) {
        EXPECT_EQ(error_of(a.free({ kBase + c.page * kPage, c.pages * kPage })), EINVAL)
            << "[" << c.page << ", " << c.page + c.pages << ")";
    }
    auto after = free_ranges(a);
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) {
        EXPECT_EQ(after[i].base, before[i].base);
        EXPECT_EQ(after[i].size, before[i].size);
    }
    EXPECT_EQ(a.free_bytes(), 12 * kPage);
}

TEST(RangeAllocator, DoubleFreeIsEINVAL)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    auto r = a.allocate_anywhere(4 * kPage, kPage);
    ASSERT_TRUE(r);
    ASSERT_TRUE(a.free(*r));
    EXPECT_EQ(error_of(a.free(*r)), EINVAL);
    expect_free_ranges(a, { { kBase, 16 * kPage } });
}

TEST(RangeAllocator, FreeOutsideOrEmptyIsEINVAL)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase, 16 * kPage));
    EXPECT_EQ(error_of(a.free({ kBase - kPage, kPage })), EINVAL);
    EXPECT_EQ(error_of(a.free({ kBase - kPage, 2 * kPage })), EINVAL);
    EXPECT_EQ(error_of(a.free({ kBase + 16 * kPage, kPage })), EINVAL);
    EXPECT_EQ(error_of(a.free({ kBase + 15 * kPage, 2 * kPage })), EINVAL);
    EXPECT_EQ(error_of(a.free({ kBase, 17 * kPage })), EINVAL);
    EXPECT_EQ(error_of(a.free({ kBase, 0 })), EINVAL);
    expect_free_ranges(a, {});
}

// A range taken in pieces may be given back in other pieces: the allocator
// tracks free space, not allocations.
TEST(RangeAllocator, FreeAcrossTwoAllocations)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase, 4 * kPage));
    ASSERT_TRUE(a.allocate_specific(kBase + 4 * kPage, 4 * kPage));
    ASSERT_TRUE(a.free({ kBase + 2 * kPage, 4 * kPage }));
    expect_free_ranges(a, { { kBase + 2 * kPage, 4 * kPage }, { kBase + 8 * kPage, 8 * kPage } });
}

// --- sizes near SIZE_MAX ----------------------------------------------------

TEST(RangeAllocator, HugeSizesNeverWrapAround)
{
    constexpr size_t max = std::numeric_limits<size_t>::max();
    constexpr size_t max_pages = max & ~(kPage - 1);
    RangeAllocator a(kBase, 16 * kPage, kPage);

    EXPECT_EQ(error_of(a.allocate_anywhere(max_pages, kPage)), ENOMEM);
    EXPECT_EQ(error_of(a.allocate_anywhere(max_pages, size_t(1) << 63)), ENOMEM);
    EXPECT_EQ(error_of(a.allocate_anywhere(kPage, size_t(1) << 63)), ENOMEM);
    EXPECT_EQ(error_of(a.allocate_anywhere(size_t(1) << 63, kPage)), ENOMEM);

    EXPECT_EQ(error_of(a.allocate_specific(kBase, max_pages)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_specific(kBase + kPage, max_pages)), EINVAL);
    // base + size wraps around to inside the arena.
    EXPECT_EQ(error_of(a.allocate_specific(kBase + 2 * kPage, max_pages - kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_specific(max_pages, kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_specific(max_pages, max_pages)), EINVAL);

    ASSERT_TRUE(a.allocate_specific(kBase, 16 * kPage));
    EXPECT_EQ(error_of(a.free({ kBase, max_pages })), EINVAL);
    // [kBase + 1p, kBase + 1p + (2^64 - 1p)) wraps to end exactly at kBase.
    EXPECT_EQ(error_of(a.free({ kBase + kPage, size_t(0) - kPage })), EINVAL);
    // Wraps to end inside the arena.
    EXPECT_EQ(error_of(a.free({ kBase + 8 * kPage, size_t(0) - 4 * kPage })), EINVAL);
    EXPECT_EQ(error_of(a.free({ max_pages, kPage })), EINVAL);
    expect_free_ranges(a, {});
}

TEST(RangeAllocator, ArenaReachingTheTopOfTheAddressSpace)
{
    constexpr size_t max_pages = std::numeric_limits<size_t>::max() & ~(kPage - 1);
    const uintptr_t base = kPage;
    const size_t size = max_pages - kPage; // ends at 2^64 - 1 page
    const uintptr_t end = base + size;
    ASSERT_EQ(end, max_pages);
    RangeAllocator a(base, size, kPage);
    const uintptr_t half = uintptr_t(1) << 63;

    // 2^63 bytes at 2^63 alignment would need [2^63, 2^64): past the end.
    EXPECT_EQ(error_of(a.allocate_anywhere(half, half)), ENOMEM);
    EXPECT_EQ(a.free_bytes(), size);

    auto r = a.allocate_anywhere(half / 2, half);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->base, half);
    EXPECT_EQ(r->size, half / 2);
    expect_free_ranges(a, { { base, half - base }, { half + half / 2, end - (half + half / 2) } });

    // No other 2^63-aligned address is free (0 is outside, 2^63 is taken);
    // aligning the top range up must not wrap to 0.
    EXPECT_EQ(error_of(a.allocate_anywhere(kPage, half)), ENOMEM);
    EXPECT_EQ(a.free_range_count(), 2u);

    // The very last page.
    auto last = a.allocate_specific(end - kPage, kPage);
    ASSERT_TRUE(last) << last.error().message();
    EXPECT_EQ(error_of(a.allocate_specific(end, kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_specific(end - kPage, 2 * kPage)), EINVAL);
    EXPECT_EQ(error_of(a.allocate_specific(end - 2 * kPage, 2 * kPage)), EEXIST);
    ASSERT_TRUE(a.free(*last));
    ASSERT_TRUE(a.free(*r));
    expect_free_ranges(a, { { base, size } });

    // Now a page at 2^62 alignment best-fits into the lowest 2^62 boundary.
    auto q = a.allocate_anywhere(kPage, half / 2);
    ASSERT_TRUE(q);
    EXPECT_EQ(q->base, half / 2);
}

// --- randomized comparison with a reference model ---------------------------

namespace {

// One bool per page: true = taken.
class Model {
public:
    Model(uintptr_t base, size_t pages) : base_(base), used_(pages, false) {}

    size_t pages() const { return used_.size(); }
    bool used(size_t i) const { return used_[i]; }
    bool all_free(size_t first, size_t n) const
    {
        for (size_t i = first; i < first + n; ++i)
            if (used_[i])
                return false;
        return true;
    }
    bool all_used(size_t first, size_t n) const
    {
        for (size_t i = first; i < first + n; ++i)
            if (!used_[i])
                return false;
        return true;
    }
    void mark(size_t first, size_t n, bool v)
    {
        for (size_t i = first; i < first + n; ++i)
            used_[i] = v;
    }
    // The maximal free runs, in address order.
    std::vector<Range> free_runs() const
    {
        std::vector<Range> out;
        for (size_t i = 0; i < used_.size();) {
            if (used_[i]) {
                ++i;
                continue;
            }
            size_t j = i;
            while (j < used_.size() && !used_[j])
                ++j;
            out.push_back({ base_ + i * kPage, (j - i) * kPage });
            i = j;
        }
        return out;
    }
    // The size (in bytes) of the smallest free run that holds `n` pages at
    // `align` pages, if any.
    std::optional<size_t> smallest_fitting_run(size_t n, size_t align) const
    {
        std::optional<size_t> best;
        for (Range r : free_runs()) {
            uintptr_t at = align_up(r.base, align * kPage);
            if (at >= r.base && at - r.base <= r.size && r.end() - at >= n * kPage)
                if (!best || r.size < *best)
                    best = r.size;
        }
        return best;
    }
    size_t index(uintptr_t a) const { return (a - base_) / kPage; }

private:
    uintptr_t base_;
    std::vector<bool> used_;
};

void check_matches(const RangeAllocator& a, const Model& m, int step)
{
    auto want = m.free_runs();
    auto got = free_ranges(a);
    ASSERT_EQ(got.size(), want.size()) << "step " << step << "; " << describe(a);
    size_t bytes = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(got[i].base, want[i].base) << "step " << step << " range " << i;
        ASSERT_EQ(got[i].size, want[i].size) << "step " << step << " range " << i;
        bytes += want[i].size;
    }
    ASSERT_EQ(a.free_range_count(), want.size()) << "step " << step;
    ASSERT_EQ(a.free_bytes(), bytes) << "step " << step;
}

void run_random(uint32_t seed, int steps, bool aligned)
{
    constexpr size_t pages = 512;
    const uintptr_t base = kBase + 3 * kPage; // unaligned for alignments > 1 page
    RangeAllocator a(base, pages * kPage, kPage);
    Model m(base, pages);
    std::mt19937 rng(seed);
    auto uniform = [&](size_t lo, size_t hi) { return std::uniform_int_distribution<size_t>(lo, hi)(rng); };

    for (int step = 0; step < steps; ++step) {
        size_t op = uniform(0, 99);
        if (op < 40) {
            size_t n = uniform(1, 24);
            size_t align = aligned ? size_t(1) << uniform(0, 4) : 1;
            auto r = a.allocate_anywhere(n * kPage, align * kPage);
            auto best = m.smallest_fitting_run(n, align);
            if (!best) {
                ASSERT_FALSE(r) << "step " << step << ": allocated " << n << " pages at " << align
                                << "-page alignment, but nothing fits";
                ASSERT_EQ(r.error().code(), ENOMEM) << "step " << step;
                continue;
            }
            ASSERT_TRUE(r) << "step " << step << ": " << n << " pages at " << align
                           << "-page alignment fit, but: " << r.error().message() << "; " << describe(a);
            ASSERT_EQ(r->size, n * kPage);
            ASSERT_EQ(r->base % (align * kPage), 0u) << "step " << step;
            ASSERT_GE(r->base, base);
            ASSERT_LE(r->end(), base + pages * kPage);
            size_t first = m.index(r->base);
            ASSERT_TRUE(m.all_free(first, n)) << "step " << step << ": handed out taken pages";
            // Best fit: the run it came from is a smallest fitting run.
            size_t lo = first, hi = first + n;
            while (lo > 0 && !m.used(lo - 1))
                --lo;
            while (hi < pages && !m.used(hi))
                ++hi;
            ASSERT_EQ((hi - lo) * kPage, *best) << "step " << step << ": not best fit for " << n << " pages at "
                                                << align << "-page alignment";
            m.mark(first, n, true);
        } else if (op < 55) {
            // Exact placement, sometimes reaching outside the arena.
            size_t first = uniform(0, pages + 8);
            size_t n = uniform(1, 16);
            auto r = a.allocate_specific(base + first * kPage, n * kPage);
            if (first + n > pages) {
                ASSERT_FALSE(r) << "step " << step;
                ASSERT_EQ(r.error().code(), EINVAL) << "step " << step;
            } else if (!m.all_free(first, n)) {
                ASSERT_FALSE(r) << "step " << step;
                ASSERT_EQ(r.error().code(), EEXIST) << "step " << step;
            } else {
                ASSERT_TRUE(r) << "step " << step << ": " << r.error().message();
                ASSERT_EQ(r->base, base + first * kPage);
                ASSERT_EQ(r->size, n * kPage);
                m.mark(first, n, true);
            }
        } else if (op < 90) {
            // Free part of a taken run.
            std::vector<size_t> taken;
            for (size_t i = 0; i < pages; ++i)
                if (m.used(i))
                    taken.push_back(i);
            if (taken.empty())
                continue;
            size_t first = taken[uniform(0, taken.size() - 1)];
            size_t n = 1;
            size_t want = uniform(1, 24);
            while (n < want && first + n < pages && m.used(first + n))
                ++n;
            auto r = a.free({ base + first * kPage, n * kPage });
            ASSERT_TRUE(r) << "step " << step << ": " << r.error().message();
            m.mark(first, n, false);
        } else {
            // A bad free: some page of it is free or it is out of the arena.
            size_t first = uniform(0, pages + 8);
            size_t n = uniform(1, 16);
            bool inside = first + n <= pages;
            if (inside && m.all_used(first, n))
                continue; // would be a valid free
            auto r = a.free({ base + first * kPage, n * kPage });
            ASSERT_FALSE(r) << "step " << step << ": freed [" << first << ", " << first + n << ")";
            ASSERT_EQ(r.error().code(), EINVAL) << "step " << step;
        }
        check_matches(a, m, step);
        if (::testing::Test::HasFatalFailure())
            return;
    }
    // Give everything back: one range again.
    for (size_t i = 0; i < pages; ++i) {
        if (m.used(i)) {
            ASSERT_TRUE(a.free({ base + i * kPage, kPage }));
            m.mark(i, 1, false);
        }
    }
    expect_free_ranges(a, { { base, pages * kPage } });
}

} // namespace

TEST(RangeAllocator, RandomizedPageAlignedAgainstReferenceModel)
{
    run_random(12345, 4000, false);
}

TEST(RangeAllocator, RandomizedAlignedAgainstReferenceModel)
{
    run_random(67890, 4000, true);
}

TEST(RangeAllocator, FreeOfUnalignedRangeIsEINVAL)
{
    RangeAllocator a(kBase, 16 * kPage, kPage);
    ASSERT_TRUE(a.allocate_specific(kBase, 16 * kPage));
    EXPECT_EQ(error_of(a.free({ kBase + 1, kPage })), EINVAL);
    EXPECT_EQ(error_of(a.free({ kBase, kPage + 1 })), EINVAL);
    EXPECT_EQ(a.free_bytes(), 0u);
}
