// PageStates: the per-page state bytes and the block summary that lets walks
// (statistics, forget on unmap, counting on split) skip untouched blocks.
// Only anonymous NORESERVE memory is mapped: no userfaultfd involved.
#include "memory/page_states.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <utility>
#include <vector>

using faultline::memory::PageState;
using faultline::memory::PageStates;

namespace {

constexpr size_t B = PageStates::kBlockPages;

PageStates make(size_t pages)
{
    auto r = PageStates::create(pages);
    if (!r) {
        ADD_FAILURE() << "create(" << pages << "): " << r.error().message();
        std::abort();
    }
    return std::move(*r);
}

using Spans = std::vector<std::pair<size_t, size_t>>;

Spans spans(const PageStates& s, size_t first, size_t count)
{
    Spans out;
    s.for_each_marked_span(first, count, [&](size_t at, size_t n) { out.emplace_back(at, n); });
    return out;
}

TEST(PageStates, CreateRejectsZeroPages)
{
    auto r = PageStates::create(0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EINVAL);
}

TEST(PageStates, FreshTableIsUnpopulatedAndUnmarked)
{
    PageStates s = make(3 * B + 7);
    EXPECT_EQ(s.size(), 3 * B + 7);
    for (size_t p : { size_t(0), B - 1, B, 3 * B + 6 })
        EXPECT_EQ(s.get(p), PageState::Unpopulated) << p;
    for (size_t b = 0; b < 4; ++b)
        EXPECT_FALSE(s.block_marked(b)) << b;
    EXPECT_EQ(s.count_populated(0, s.size()), 0u);
    EXPECT_TRUE(spans(s, 0, s.size()).empty());
}

TEST(PageStates, MoveTransfersTheTable)
{
    PageStates a = make(100);
    a.set(5, 1, PageState::Present);
    PageStates b(std::move(a));
    EXPECT_EQ(a.size(), 0u); // the moved-from table owns nothing (and unmaps nothing)
    EXPECT_EQ(b.size(), 100u);
    EXPECT_EQ(b.get(5), PageState::Present);
}

// populate is the fault path's "record what I installed unless another
// thread already did": only Unpopulated pages change.
TEST(PageStates, PopulateMovesOnlyUnpopulatedPages)
{
    PageStates s = make(16);
    s.set(2, 1, PageState::Present);
    s.set(3, 1, PageState::ZeroMapped);
    s.populate(0, 6, PageState::ZeroMapped);
    EXPECT_EQ(s.get(0), PageState::ZeroMapped);
    EXPECT_EQ(s.get(1), PageState::ZeroMapped);
    EXPECT_EQ(s.get(2), PageState::Present); // kept, not downgraded
    EXPECT_EQ(s.get(3), PageState::ZeroMapped);
    EXPECT_EQ(s.get(4), PageState::ZeroMapped);
    EXPECT_EQ(s.get(5), PageState::ZeroMapped);
    EXPECT_EQ(s.get(6), PageState::Unpopulated); // just past the range

    s.populate(3, 1, PageState::Present); // ZeroMapped is not Unpopulated: kept
    EXPECT_EQ(s.get(3), PageState::ZeroMapped);
    EXPECT_EQ(s.count_populated(0, 16), 6u);
}

TEST(PageStates, PopulateAndSetClipToTheTable)
{
    PageStates s = make(10);
    s.populate(8, 100, PageState::Present);
    EXPECT_EQ(s.count_populated(0, 10), 2u);
    s.populate(10, 5, PageState::Present); // starts past the end: nothing
    s.populate(3, 0, PageState::Present);  // empty: nothing
    s.set(12, 3, PageState::Present);
    EXPECT_EQ(s.count_populated(0, 10), 2u);
    EXPECT_EQ(s.get(3), PageState::Unpopulated);
    s.set(9, 50, PageState::Unpopulated);
    EXPECT_EQ(s.get(8), PageState::Present);
    EXPECT_EQ(s.get(9), PageState::Unpopulated);
}

TEST(PageStates, SetOverwritesWhateverWasThere)
{
    PageStates s = make(8);
    s.populate(0, 4, PageState::ZeroMapped);
    s.set(1, 2, PageState::Present);
    EXPECT_EQ(s.get(0), PageState::ZeroMapped);
    EXPECT_EQ(s.get(1), PageState::Present);
    EXPECT_EQ(s.get(2), PageState::Present);
    EXPECT_EQ(s.get(3), PageState::ZeroMapped);
    s.set(0, 2, PageState::Unpopulated);
    EXPECT_FALSE(s.populated(0));
    EXPECT_FALSE(s.populated(1));
    EXPECT_EQ(s.count_populated(0, 8), 2u);
}

TEST(PageStates, MarkingFollowsPopulatedBlocks)
{
    PageStates s = make(4 * B);
    s.set(B + 5, 1, PageState::Unpopulated); // recording "nothing" marks nothing
    EXPECT_FALSE(s.block_marked(1));
    s.populate(B - 1, 2, PageState::Present); // straddles blocks 0 and 1
    EXPECT_TRUE(s.block_marked(0));
    EXPECT_TRUE(s.block_marked(1));
    EXPECT_FALSE(s.block_marked(2));
    s.set(3 * B, 1, PageState::ZeroMapped);
    EXPECT_TRUE(s.block_marked(3));
    EXPECT_FALSE(s.block_marked(2));
}

TEST(PageStates, CountPopulatedAcrossBlocksAndTheLastPartialBlock)
{
    const size_t pages = 3 * B + 100; // block 3 is partial
    PageStates s = make(pages);
    s.populate(B - 2, 4, PageState::Present);      // B-2 .. B+1
    s.populate(2 * B + 10, 1, PageState::ZeroMapped);
    s.populate(pages - 3, 3, PageState::Present);  // last three pages
    EXPECT_EQ(s.count_populated(0, pages), 8u);
    EXPECT_EQ(s.count_populated(B - 1, 2), 2u);     // straddles a boundary
    EXPECT_EQ(s.count_populated(B, B), 2u);
    EXPECT_EQ(s.count_populated(B + 2, B), 0u);
    EXPECT_EQ(s.count_populated(2 * B + 10, 1), 1u);
    EXPECT_EQ(s.count_populated(2 * B + 11, pages), 3u); // count clipped to the table
    EXPECT_EQ(s.count_populated(pages - 2, 1), 1u);
    EXPECT_EQ(s.count_populated(pages, 10), 0u);
    EXPECT_EQ(s.count_populated(5, 0), 0u);
}

TEST(PageStates, MarkedSpansAreTheMarkedBlocksShareOfTheRange)
{
    PageStates s = make(8 * B);
    for (size_t block : { 0, 2, 3, 7 })
        s.set(block * B + 1, 1, PageState::Present);

    // Whole range: every marked block, in order.
    EXPECT_EQ(spans(s, 0, 8 * B), (Spans { { 0, B }, { 2 * B, B }, { 3 * B, B }, { 7 * B, B } }));
    // Starting mid-block 0 and ending mid-block 3: the bounds are cut.
    EXPECT_EQ(spans(s, 100, 3 * B + 50 - 100), (Spans { { 100, B - 100 }, { 2 * B, B }, { 3 * B, 50 } }));
    // Starting in an unmarked block: the first span is the next marked block.
    EXPECT_EQ(spans(s, B + 7, B + 10), (Spans { { 2 * B, 17 } }));
    // Entirely inside a marked block, and entirely inside unmarked ones.
    EXPECT_EQ(spans(s, 2 * B + 5, 10), (Spans { { 2 * B + 5, 10 } }));
    EXPECT_TRUE(spans(s, 4 * B + 3, 3 * B - 3).empty());
    EXPECT_TRUE(spans(s, 0, 0).empty());
}

// The summary is skipped 64 blocks per word: marks on both sides of a word
// boundary and far beyond it must all be found.
TEST(PageStates, MarkedSpansAcrossSummaryWords)
{
    const size_t pages = 200 * B + 10;
    PageStates s = make(pages);
    for (size_t block : { 63, 64, 128, 200 })
        s.set(block * B, 1, PageState::Present);
    EXPECT_EQ(spans(s, 0, pages), (Spans { { 63 * B, B }, { 64 * B, B }, { 128 * B, B }, { 200 * B, 10 } }));
    EXPECT_EQ(spans(s, 65 * B, 64 * B), (Spans { { 128 * B, B } }));
    EXPECT_EQ(s.count_populated(0, pages), 4u);
    EXPECT_EQ(s.count_populated(129 * B, pages), 1u);
}

TEST(PageStates, ForgetInsideABlockKeepsTheRest)
{
    PageStates s = make(2 * B);
    s.populate(0, 20, PageState::Present);
    s.forget(5, 10);
    for (size_t p = 0; p < 20; ++p)
        EXPECT_EQ(s.populated(p), p < 5 || p >= 15) << p;
    EXPECT_EQ(s.count_populated(0, 2 * B), 10u);
    // A partially forgotten block may still hold pages: it stays marked.
    EXPECT_TRUE(s.block_marked(0));
    s.forget(0, 0); // nothing
    s.forget(2 * B, 5);
    EXPECT_EQ(s.count_populated(0, 2 * B), 10u);
}

TEST(PageStates, ForgetWholeBlocksUnmarksThem)
{
    PageStates s = make(4 * B);
    s.populate(0, 4 * B, PageState::Present);
    // From mid-block 0 to mid-block 3: blocks 1 and 2 are whole.
    s.forget(B - 10, 2 * B + 30);
    EXPECT_TRUE(s.block_marked(0));
    EXPECT_FALSE(s.block_marked(1));
    EXPECT_FALSE(s.block_marked(2));
    EXPECT_TRUE(s.block_marked(3));
    EXPECT_EQ(s.count_populated(0, 4 * B), 4 * B - (2 * B + 30));
    EXPECT_TRUE(s.populated(B - 11));
    EXPECT_FALSE(s.populated(B - 10));
    EXPECT_FALSE(s.populated(3 * B + 19));
    EXPECT_TRUE(s.populated(3 * B + 20));
    // Later walks skip the unmarked blocks.
    EXPECT_EQ(spans(s, 0, 4 * B), (Spans { { 0, B }, { 3 * B, B } }));
    // Their states read back Unpopulated, and they can be populated again.
    EXPECT_EQ(s.get(B + 1), PageState::Unpopulated);
    s.populate(B + 1, 1, PageState::ZeroMapped);
    EXPECT_TRUE(s.block_marked(1));
    EXPECT_EQ(s.get(B + 1), PageState::ZeroMapped);
    EXPECT_EQ(s.get(B + 2), PageState::Unpopulated);
}

// The last block is short; forgetting all of it counts as the whole block.
TEST(PageStates, ForgetTheLastPartialBlock)
{
    const size_t pages = 2 * B + 100;
    PageStates s = make(pages);
    s.populate(0, pages, PageState::Present);
    s.forget(2 * B, 1000); // clipped to the table
    EXPECT_FALSE(s.block_marked(2));
    EXPECT_EQ(s.count_populated(0, pages), 2 * B);
    EXPECT_FALSE(s.populated(pages - 1));
    // Only part of the last block: marked, per page.
    s.populate(2 * B, 100, PageState::Present);
    s.forget(2 * B + 50, 50);
    EXPECT_TRUE(s.block_marked(2));
    EXPECT_EQ(s.count_populated(2 * B, 100), 50u);
}

TEST(PageStates, PopulatedRunBelow)
{
    PageStates s = make(100);
    s.populate(10, 10, PageState::Present); // 10..19
    EXPECT_EQ(s.populated_run_below(20, 0, 100), 10u);
    EXPECT_EQ(s.populated_run_below(20, 0, 4), 4u);    // limit
    EXPECT_EQ(s.populated_run_below(20, 15, 100), 5u); // floor
    EXPECT_EQ(s.populated_run_below(20, 20, 100), 0u);
    EXPECT_EQ(s.populated_run_below(21, 0, 100), 0u);  // page 20 breaks the run
    EXPECT_EQ(s.populated_run_below(15, 0, 100), 5u);  // the page itself is not counted
    EXPECT_EQ(s.populated_run_below(0, 0, 100), 0u);
    EXPECT_EQ(s.populated_run_below(20, 0, 0), 0u);
    EXPECT_EQ(s.populated_run_below(12, 30, 100), 0u); // page below the floor
}

TEST(PageStates, PopulatedRunAbove)
{
    PageStates s = make(100);
    s.populate(10, 10, PageState::ZeroMapped); // 10..19
    EXPECT_EQ(s.populated_run_above(9, 100, 100), 10u);
    EXPECT_EQ(s.populated_run_above(9, 100, 3), 3u);   // limit
    EXPECT_EQ(s.populated_run_above(9, 15, 100), 5u);  // ceiling is exclusive: 10..14
    EXPECT_EQ(s.populated_run_above(9, 10, 100), 0u);
    EXPECT_EQ(s.populated_run_above(8, 100, 100), 0u); // page 9 breaks the run
    EXPECT_EQ(s.populated_run_above(14, 100, 100), 5u);
    EXPECT_EQ(s.populated_run_above(99, 100, 100), 0u);
    s.populate(99, 1, PageState::Present);
    EXPECT_EQ(s.populated_run_above(98, 100, 100), 1u);
}

// 2^32 pages (16 TiB of object) cost 4 GiB of NORESERVE state bytes and a
// 128 KiB summary. With two populated pages a whole-range walk must visit
// two blocks, not four billion bytes.
TEST(PageStates, HugeObjectWalksOnlyMarkedBlocks)
{
    const size_t pages = size_t(1) << 32;
    auto r = PageStates::create(pages);
    if (!r && r.error().code() == ENOMEM)
        GTEST_SKIP() << "cannot reserve 4 GiB of address space here: " << r.error().message();
    ASSERT_TRUE(r) << r.error().message();
    PageStates& s = *r;

    const auto start = std::chrono::steady_clock::now();
    s.populate(12345, 1, PageState::Present);
    s.populate(pages - 1, 1, PageState::ZeroMapped);
    EXPECT_EQ(s.count_populated(0, pages), 2u);
    EXPECT_EQ(spans(s, 0, pages), (Spans { { 3 * B, B }, { pages - B, B } })); // 12345 is in block 3
    EXPECT_EQ(s.count_populated(4 * B, pages - 5 * B), 0u);
    EXPECT_EQ(s.count_populated(0, 4 * B), 1u);
    s.forget(0, pages);
    EXPECT_EQ(s.count_populated(0, pages), 0u);
    EXPECT_FALSE(s.block_marked(12345 / B));
    EXPECT_FALSE(s.block_marked((pages - 1) / B));
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_LT(elapsed, std::chrono::milliseconds(500));
}

} // namespace
