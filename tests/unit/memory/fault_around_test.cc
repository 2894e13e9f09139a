// choose_fault_around_window: the adaptive window computed from the page
// states around a fault (isolated faults, ascending and descending streams,
// the region bounds). Pure computation over a PageStates table.
#include "memory/objects/fault_around.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <utility>
#include <vector>

using faultline::memory::choose_fault_around_window;
using faultline::memory::FaultAround;
using faultline::memory::PageState;
using faultline::memory::PageStates;
using faultline::memory::Window;

namespace {

PageStates make(size_t pages)
{
    auto r = PageStates::create(pages);
    if (!r) {
        ADD_FAILURE() << r.error().message();
        std::abort();
    }
    return std::move(*r);
}

// Window as (first, count) so failures print both.
std::pair<size_t, size_t> win(const PageStates& s, size_t page, size_t floor, size_t ceiling, unsigned min,
    unsigned max)
{
    Window w = choose_fault_around_window(s, page, floor, ceiling, FaultAround { min, max });
    return { w.first, w.count };
}

using W = std::pair<size_t, size_t>;

TEST(FaultAround, IsolatedFaultGetsTheAlignedBlockOfMinPages)
{
    PageStates s = make(1024);
    EXPECT_EQ(win(s, 37, 0, 1024, 16, 64), W(32, 16));
    EXPECT_EQ(win(s, 32, 0, 1024, 16, 64), W(32, 16)); // first page of a block
    EXPECT_EQ(win(s, 47, 0, 1024, 16, 64), W(32, 16)); // last page of a block
    EXPECT_EQ(win(s, 48, 0, 1024, 16, 64), W(48, 16));
    // Faults anywhere in one block agree on the window.
    for (size_t p = 96; p < 112; ++p)
        EXPECT_EQ(win(s, p, 0, 1024, 16, 512), W(96, 16)) << p;
}

TEST(FaultAround, IsolatedWindowIsClippedToTheRegion)
{
    PageStates s = make(1024);
    EXPECT_EQ(win(s, 37, 35, 1024, 16, 64), W(35, 13)); // floor inside the block
    EXPECT_EQ(win(s, 37, 0, 40, 16, 64), W(32, 8));     // ceiling inside the block
    EXPECT_EQ(win(s, 37, 35, 40, 16, 64), W(35, 5));    // both
    EXPECT_EQ(win(s, 37, 37, 38, 16, 64), W(37, 1));    // a one-page region
}

// A short run below (or above) is not a stream yet: the aligned block.
TEST(FaultAround, RunShorterThanMinIsNotAStream)
{
    PageStates s = make(1024);
    s.populate(103, 7, PageState::Present); // 103..109, 7 pages below 110
    EXPECT_EQ(win(s, 110, 0, 1024, 8, 64), W(104, 8));
    s.populate(111, 7, PageState::Present); // and 7 above
    EXPECT_EQ(win(s, 110, 0, 1024, 8, 64), W(104, 8));
}

TEST(FaultAround, AscendingStreamStartsAtTheFaultAndDoublesTheRun)
{
    PageStates s = make(1024);
    s.populate(100, 10, PageState::Present); // 100..109: a run of 10 below 110
    EXPECT_EQ(win(s, 110, 0, 1024, 8, 64), W(110, 20));
    EXPECT_EQ(win(s, 110, 0, 1024, 8, 16), W(110, 16));  // at most max
    EXPECT_EQ(win(s, 110, 0, 115, 8, 64), W(110, 5));    // held to the ceiling
    EXPECT_EQ(win(s, 110, 0, 111, 8, 64), W(110, 1));
    // The floor cuts the run: 5 pages of it are in the region, fewer than
    // min, so the aligned block [104, 112), held to the floor.
    EXPECT_EQ(win(s, 110, 105, 1024, 8, 64), W(105, 7));
    // Exactly min pages below is a stream.
    EXPECT_EQ(win(s, 110, 102, 1024, 8, 64), W(110, 16));
}

TEST(FaultAround, LongRunIsCountedUpToMax)
{
    PageStates s = make(2048);
    s.populate(0, 1000, PageState::ZeroMapped);
    EXPECT_EQ(win(s, 1000, 0, 2048, 32, 512), W(1000, 512));
    EXPECT_EQ(win(s, 1000, 0, 2048, 32, 100), W(1000, 100));
}

TEST(FaultAround, DescendingStreamEndsAtTheFault)
{
    PageStates s = make(1024);
    s.populate(111, 10, PageState::Present); // 111..120: a run of 10 above 110
    EXPECT_EQ(win(s, 110, 0, 1024, 8, 64), W(91, 20));
    EXPECT_EQ(win(s, 110, 0, 1024, 8, 16), W(95, 16));   // at most max
    EXPECT_EQ(win(s, 110, 100, 1024, 8, 64), W(100, 11)); // held to the floor
    EXPECT_EQ(win(s, 110, 110, 1024, 8, 64), W(110, 1));
    // The ceiling cuts the run to 5 pages: not a stream.
    EXPECT_EQ(win(s, 110, 0, 116, 8, 64), W(104, 8));
}

// Both neighbours populated: the run below wins (ascending is checked first).
TEST(FaultAround, RunBelowTakesPrecedence)
{
    PageStates s = make(1024);
    s.populate(90, 20, PageState::Present);  // 20 below 110
    s.populate(111, 30, PageState::Present); // 30 above
    EXPECT_EQ(win(s, 110, 0, 1024, 8, 512), W(110, 40));
}

TEST(FaultAround, MinEqualsMaxIsTheFixedAlignedBlock)
{
    PageStates s = make(1024);
    s.populate(0, 500, PageState::Present);
    s.populate(520, 500, PageState::Present);
    EXPECT_EQ(win(s, 500, 0, 1024, 16, 16), W(496, 16));
    EXPECT_EQ(win(s, 519, 0, 1024, 16, 16), W(512, 16));
    EXPECT_EQ(win(s, 500, 0, 1024, 1, 1), W(500, 1));
}

// Defensive clamps: min 0 acts as 1, max below min acts as min.
TEST(FaultAround, DegenerateLimits)
{
    PageStates s = make(64);
    s.populate(0, 10, PageState::Present);
    EXPECT_EQ(win(s, 10, 0, 64, 0, 0), W(10, 1));
    EXPECT_EQ(win(s, 10, 0, 64, 8, 4), W(8, 8));
}

// A sequential first touch, one fault at the end of each window: the
// windows double until max and stay there.
TEST(FaultAround, SequentialToucherDoubles)
{
    PageStates s = make(4096);
    std::vector<size_t> sizes;
    for (size_t page = 0; page < 2000;) {
        Window w = choose_fault_around_window(s, page, 0, 4096, FaultAround { 32, 512 });
        ASSERT_EQ(w.first, page);
        sizes.push_back(w.count);
        s.populate(w.first, w.count, PageState::Present);
        page = w.end();
    }
    EXPECT_EQ(sizes, (std::vector<size_t> { 32, 64, 192, 512, 512, 512, 512 }));
}

// A stack grows down: the same doubling, mirrored.
TEST(FaultAround, DescendingToucherDoubles)
{
    PageStates s = make(4096);
    std::vector<W> windows;
    for (size_t page = 4095; windows.size() < 6;) {
        Window w = choose_fault_around_window(s, page, 0, 4096, FaultAround { 32, 512 });
        ASSERT_EQ(w.end(), page + 1);
        windows.emplace_back(w.first, w.count);
        s.populate(w.first, w.count, PageState::Present);
        page = w.first - 1;
    }
    // The first fault is isolated: the aligned block, which ends at 4096.
    EXPECT_EQ(windows, (std::vector<W> { { 4064, 32 }, { 4000, 64 }, { 3808, 192 }, { 3296, 512 }, { 2784, 512 },
                           { 2272, 512 } }));
}

// Random states and bounds: the window always holds the fault and stays in
// the region and within max(min, max) pages.
TEST(FaultAround, WindowAlwaysContainsTheFaultAndStaysInTheRegion)
{
    std::mt19937_64 rng(7);
    PageStates s = make(2048);
    for (int round = 0; round < 20000; ++round) {
        if (round % 500 == 0) {
            s.set(0, 2048, PageState::Unpopulated);
            for (int i = 0; i < 40; ++i)
                s.populate(rng() % 2048, 1 + rng() % 300, PageState::Present);
        }
        size_t floor = rng() % 2048;
        size_t ceiling = floor + 1 + rng() % (2048 - floor);
        size_t page = floor + rng() % (ceiling - floor);
        unsigned min = unsigned(1 + rng() % 64);
        unsigned max = unsigned(min + rng() % 512);
        Window w = choose_fault_around_window(s, page, floor, ceiling, FaultAround { min, max });
        ASSERT_LE(w.first, page) << round;
        ASSERT_LT(page, w.end()) << round;
        ASSERT_GE(w.first, floor) << round;
        ASSERT_LE(w.end(), ceiling) << round;
        ASSERT_LE(w.count, size_t(max)) << round;
    }
}

} // namespace

namespace {

// A random toucher filling a region: once half of the aligned block of
// `max` pages around an isolated fault is populated, the whole block.
TEST(FaultAround, HalfPopulatedMaxBlockIsFilledWhole)
{
    PageStates s = make(2048);
    // Block [512, 1024) of max 512: populate windows of 32 at every other
    // 32-page slot, except leave 64..96 of it, 32 pages short of half.
    for (size_t at = 512; at < 1024; at += 64)
        if (at != 512 + 64 * 3)
            s.populate(at, 32, PageState::Present);
    // 7 of 8 windows = 224 pages: under half, an isolated fault at 680
    // (in a gap: 679 and 681 are not populated) keeps the min block.
    ASSERT_EQ(s.count_populated(512, 512), 224u);
    EXPECT_EQ(win(s, 680, 0, 2048, 32, 512), W(672, 32));
    // One more window makes it exactly half: the whole block.
    s.populate(512 + 64 * 3, 32, PageState::Present);
    EXPECT_EQ(win(s, 680, 0, 2048, 32, 512), W(512, 512));
    // Held to the region, and judged on the part inside it: [512, 900)
    // holds 6 windows and 4 pages of a seventh, 196 of 388 pages.
    EXPECT_EQ(win(s, 680, 512, 900, 32, 512), W(512, 388));
    // [600, 900) holds only 140 of 300: the min block.
    EXPECT_EQ(win(s, 680, 600, 900, 32, 512), W(672, 32));
    // A fixed window (max == min) never does this.
    EXPECT_EQ(win(s, 680, 0, 2048, 32, 32), W(672, 32));
}

// The stride-64 sparse toucher of the benchmark: windows of 32 every 64
// pages never fill half of a block before the block's last touch.
TEST(FaultAround, StrideSixtyFourToucherKeepsTheMinWindow)
{
    PageStates s = make(4096);
    for (size_t page = 0; page < 4096; page += 64) {
        Window w = choose_fault_around_window(s, page, 0, 4096, FaultAround { 32, 512 });
        EXPECT_EQ(w.count, 32u) << "at page " << page;
        s.populate(w.first, w.count, PageState::Present);
    }
}

} // namespace
