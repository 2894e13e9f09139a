// RegionTree: placement through its allocator, insert/remove, lookups at
// region boundaries and in gaps, overlap queries and coverage.
#include "memory/objects/anonymous_vm_object.h"
#include "memory/region_tree.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <mutex>
#include <shared_mutex>
#include <vector>

using faultline::Access;
using faultline::memory::AnonymousVMObject;
using faultline::memory::Range;
using faultline::memory::Region;
using faultline::memory::RegionTree;

namespace {

constexpr size_t kPage = 4096;
constexpr uintptr_t kBase = 0x60000000;
constexpr size_t kPages = 64;

template <typename T>
int error_of(const faultline::Result<T>& r)
{
    return r ? 0 : r.error().code();
}

std::unique_ptr<Region> new_region(Range range, std::string name = "r")
{
    auto object = AnonymousVMObject::try_create_with_size(range.size, kPage);
    EXPECT_TRUE(object) << (object ? "" : object.error().message());
    if (!object)
        return nullptr;
    Region::Params p;
    p.range = range;
    p.object = *object;
    p.name = std::move(name);
    p.access = Access::ReadWrite;
    p.max_access = Access::ReadWrite;
    auto r = Region::try_create(std::move(p));
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? std::move(*r) : nullptr;
}

class RegionTreeTest : public ::testing::Test {
protected:
    RegionTree tree { kBase, kPages * kPage, kPage };

    // Places [first, first+n) pages and inserts a region there.
    Region* add(size_t first, size_t n, std::string name = "r")
    {
        auto placed = tree.place_specifically(kBase + first * kPage, n * kPage);
        EXPECT_TRUE(placed) << (placed ? "" : placed.error().message());
        if (!placed)
            return nullptr;
        auto region = new_region(*placed, std::move(name));
        Region* raw = region.get();
        if (region)
            tree.insert(std::move(region));
        return raw;
    }

    // Layout used by the lookup tests: A [4,8)  B [8,12)  gap [12,20)  C [20,21)  gap [21,64)
    void standard_layout()
    {
        a = add(4, 4, "A");
        b = add(8, 4, "B");
        c = add(20, 1, "C");
        ASSERT_TRUE(a && b && c);
    }
    Region* a = nullptr;
    Region* b = nullptr;
    Region* c = nullptr;
};

std::vector<std::string> names_of(const std::vector<Region*>& regions)
{
    std::vector<std::string> out;
    for (Region* r : regions)
        out.push_back(r->name());
    return out;
}

using Names = std::vector<std::string>;

} // namespace

// --- placement ----------------------------------------------------------------

TEST_F(RegionTreeTest, StartsEmpty)
{
    EXPECT_EQ(tree.region_count(), 0u);
    EXPECT_EQ(tree.free_space().free_bytes(), kPages * kPage);
    EXPECT_EQ(tree.find_region_containing(kBase), nullptr);
    EXPECT_TRUE(tree.regions_overlapping(kBase, kPages * kPage).empty());
    EXPECT_FALSE(tree.covers(kBase, kPage));
}

TEST_F(RegionTreeTest, PlaceAnywhereHandsOutDisjointRanges)
{
    std::vector<Range> got;
    for (int i = 0; i < 8; ++i) {
        auto r = tree.place_anywhere(8 * kPage, kPage);
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(r->size, 8 * kPage);
        EXPECT_GE(r->base, kBase);
        EXPECT_LE(r->end(), kBase + kPages * kPage);
        for (Range other : got)
            EXPECT_TRUE(r->end() <= other.base || other.end() <= r->base);
        got.push_back(*r);
    }
    EXPECT_EQ(tree.free_space().free_bytes(), 0u);
    EXPECT_EQ(error_of(tree.place_anywhere(kPage, kPage)), ENOMEM);
    EXPECT_EQ(error_of(tree.place_specifically(kBase, kPage)), EEXIST);
}

TEST_F(RegionTreeTest, PlaceAnywhereHonoursAlignment)
{
    ASSERT_TRUE(tree.place_specifically(kBase, kPage));
    auto r = tree.place_anywhere(kPage, 16 * kPage);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->base, kBase + 16 * kPage);
    EXPECT_EQ(error_of(tree.place_anywhere(kPage, 3 * kPage)), EINVAL);
    EXPECT_EQ(error_of(tree.place_anywhere(0, kPage)), EINVAL);
}

TEST_F(RegionTreeTest, PlaceSpecificallyOverlapIsEEXIST)
{
    ASSERT_TRUE(add(8, 4));
    EXPECT_EQ(error_of(tree.place_specifically(kBase + 8 * kPage, 4 * kPage)), EEXIST);
    EXPECT_EQ(error_of(tree.place_specifically(kBase + 6 * kPage, 3 * kPage)), EEXIST);
    EXPECT_EQ(error_of(tree.place_specifically(kBase + 11 * kPage, 3 * kPage)), EEXIST);
    EXPECT_EQ(error_of(tree.place_specifically(kBase, kPages * kPage)), EEXIST);
    EXPECT_EQ(error_of(tree.place_specifically(kBase + 9 * kPage, kPage)), EEXIST);
    // Adjacent is fine.
    EXPECT_TRUE(tree.place_specifically(kBase + 7 * kPage, kPage));
    EXPECT_TRUE(tree.place_specifically(kBase + 12 * kPage, kPage));
}

TEST_F(RegionTreeTest, PlaceSpecificallyOutsideIsEINVAL)
{
    EXPECT_EQ(error_of(tree.place_specifically(kBase - kPage, kPage)), EINVAL);
    EXPECT_EQ(error_of(tree.place_specifically(kBase + kPages * kPage, kPage)), EINVAL);
    EXPECT_EQ(error_of(tree.place_specifically(kBase + (kPages - 1) * kPage, 2 * kPage)), EINVAL);
    EXPECT_EQ(error_of(tree.place_specifically(kBase + 1, kPage)), EINVAL);
    EXPECT_EQ(error_of(tree.place_specifically(kBase, 0)), EINVAL);
}

TEST_F(RegionTreeTest, ReleaseRangeMakesItPlaceableAgain)
{
    auto r = tree.place_specifically(kBase + 4 * kPage, 4 * kPage);
    ASSERT_TRUE(r);
    EXPECT_EQ(tree.free_space().free_bytes(), (kPages - 4) * kPage);
    ASSERT_TRUE(tree.release_range(*r));
    EXPECT_EQ(tree.free_space().free_bytes(), kPages * kPage);
    EXPECT_EQ(tree.free_space().free_range_count(), 1u);
    EXPECT_EQ(error_of(tree.release_range(*r)), EINVAL) << "double release";
    EXPECT_TRUE(tree.place_specifically(kBase + 4 * kPage, 4 * kPage));
}

// --- insert / remove ----------------------------------------------------------

TEST_F(RegionTreeTest, InsertAndRemove)
{
    standard_layout();
    EXPECT_EQ(tree.region_count(), 3u);
    EXPECT_EQ(tree.find_region_containing(kBase + 9 * kPage), b);

    auto owned = tree.remove(*b);
    EXPECT_EQ(owned.get(), b);
    EXPECT_EQ(tree.region_count(), 2u);
    EXPECT_EQ(tree.find_region_containing(kBase + 9 * kPage), nullptr);
    EXPECT_EQ(tree.find_region_containing(kBase + 4 * kPage), a);
    EXPECT_EQ(tree.find_region_containing(kBase + 20 * kPage), c);
    // Removing a region does not release its range: that is the caller's.
    EXPECT_EQ(error_of(tree.place_specifically(kBase + 8 * kPage, kPage)), EEXIST);
    ASSERT_TRUE(tree.release_range(owned->range()));
    EXPECT_TRUE(tree.place_specifically(kBase + 8 * kPage, kPage));

    // Re-inserting the same region works.
    tree.insert(std::move(owned));
    EXPECT_EQ(tree.region_count(), 3u);
    EXPECT_EQ(tree.find_region_containing(kBase + 11 * kPage), b);
}

TEST_F(RegionTreeTest, ForEachVisitsInAddressOrder)
{
    // Inserted out of order.
    ASSERT_TRUE(add(30, 2, "third"));
    ASSERT_TRUE(add(2, 2, "first"));
    ASSERT_TRUE(add(10, 5, "second"));
    ASSERT_TRUE(add(60, 4, "fourth"));
    Names seen;
    uintptr_t last = 0;
    tree.for_each([&](Region& r) {
        EXPECT_GT(r.base(), last);
        last = r.base();
        seen.push_back(r.name());
    });
    EXPECT_EQ(seen, (Names { "first", "second", "third", "fourth" }));
}

// --- find_region_containing -------------------------------------------------

TEST_F(RegionTreeTest, FindRegionContainingAtBoundaries)
{
    standard_layout();
    EXPECT_EQ(tree.find_region_containing(kBase), nullptr);                   // arena start, before A
    EXPECT_EQ(tree.find_region_containing(kBase + 4 * kPage - 1), nullptr);   // byte before A
    EXPECT_EQ(tree.find_region_containing(kBase + 4 * kPage), a);             // A's base
    EXPECT_EQ(tree.find_region_containing(kBase + 5 * kPage + 123), a);
    EXPECT_EQ(tree.find_region_containing(kBase + 8 * kPage - 1), a);         // A's last byte
    EXPECT_EQ(tree.find_region_containing(kBase + 8 * kPage), b);             // A's end = B's base
    EXPECT_EQ(tree.find_region_containing(kBase + 12 * kPage - 1), b);        // B's last byte
    EXPECT_EQ(tree.find_region_containing(kBase + 12 * kPage), nullptr);      // B's end, gap
    EXPECT_EQ(tree.find_region_containing(kBase + 16 * kPage), nullptr);      // inside the gap
    EXPECT_EQ(tree.find_region_containing(kBase + 20 * kPage - 1), nullptr);
    EXPECT_EQ(tree.find_region_containing(kBase + 20 * kPage), c);
    EXPECT_EQ(tree.find_region_containing(kBase + 21 * kPage - 1), c);
    EXPECT_EQ(tree.find_region_containing(kBase + 21 * kPage), nullptr);
    EXPECT_EQ(tree.find_region_containing(kBase + kPages * kPage), nullptr);  // past the arena
    EXPECT_EQ(tree.find_region_containing(0), nullptr);
    EXPECT_EQ(tree.find_region_containing(UINTPTR_MAX), nullptr);
}

TEST_F(RegionTreeTest, AcquireForFaultCountsInFlight)
{
    standard_layout();
    Region* r = tree.acquire_for_fault(kBase + 10 * kPage);
    ASSERT_EQ(r, b);
    EXPECT_EQ(b->faults_in_flight(), 1u);
    EXPECT_EQ(a->faults_in_flight(), 0u);
    EXPECT_EQ(tree.acquire_for_fault(kBase + 13 * kPage), nullptr);
    EXPECT_EQ(tree.acquire_for_fault(kBase + 8 * kPage), b);
    EXPECT_EQ(b->faults_in_flight(), 2u);
    b->end_fault();
    b->end_fault();
    EXPECT_EQ(b->faults_in_flight(), 0u);
    // The shared lock was released: an exclusive lock is free.
    std::unique_lock<std::shared_mutex> lock(tree.lock(), std::try_to_lock);
    EXPECT_TRUE(lock.owns_lock());
}

// --- regions_overlapping ------------------------------------------------------

TEST_F(RegionTreeTest, RegionsOverlapping)
{
    standard_layout();
    auto q = [&](size_t first, size_t n) { return names_of(tree.regions_overlapping(kBase + first * kPage, n * kPage)); };
    EXPECT_EQ(q(0, kPages), (Names { "A", "B", "C" }));
    EXPECT_EQ(q(0, 4), Names {});            // ends exactly at A's base
    EXPECT_EQ(q(0, 5), (Names { "A" }));
    EXPECT_EQ(q(4, 4), (Names { "A" }));     // exactly A
    EXPECT_EQ(q(5, 1), (Names { "A" }));     // inside A
    EXPECT_EQ(q(7, 2), (Names { "A", "B" })); // straddles A|B
    EXPECT_EQ(q(6, 10), (Names { "A", "B" }));
    EXPECT_EQ(q(8, 4), (Names { "B" }));
    EXPECT_EQ(q(12, 8), Names {});           // starts exactly at B's end, ends at C's base
    EXPECT_EQ(q(13, 2), Names {});           // inside the gap
    EXPECT_EQ(q(11, 10), (Names { "B", "C" }));
    EXPECT_EQ(q(20, 44), (Names { "C" }));
    EXPECT_EQ(q(21, 43), Names {});
    // Sub-page queries at the edges.
    EXPECT_EQ(names_of(tree.regions_overlapping(kBase + 8 * kPage - 1, 1)), (Names { "A" }));
    EXPECT_EQ(names_of(tree.regions_overlapping(kBase + 8 * kPage - 1, 2)), (Names { "A", "B" }));
    EXPECT_EQ(names_of(tree.regions_overlapping(kBase + 12 * kPage - 1, 1)), (Names { "B" }));
}

// --- covers -------------------------------------------------------------------

TEST_F(RegionTreeTest, Covers)
{
    standard_layout();
    EXPECT_TRUE(tree.covers(kBase + 4 * kPage, 4 * kPage));  // exactly A
    EXPECT_TRUE(tree.covers(kBase + 4 * kPage, 8 * kPage));  // A and B, adjacent
    EXPECT_TRUE(tree.covers(kBase + 5 * kPage, 5 * kPage));  // inside A..B
    EXPECT_TRUE(tree.covers(kBase + 9 * kPage, kPage));      // inside B
    EXPECT_TRUE(tree.covers(kBase + 20 * kPage, kPage));     // exactly C
    EXPECT_FALSE(tree.covers(kBase + 3 * kPage, 2 * kPage)); // starts before A
    EXPECT_FALSE(tree.covers(kBase + 4 * kPage, 9 * kPage)); // runs past B
    EXPECT_FALSE(tree.covers(kBase + 4 * kPage, 17 * kPage)); // A..C with the hole [12,20)
    EXPECT_FALSE(tree.covers(kBase + 11 * kPage, 10 * kPage)); // B..C with the hole
    EXPECT_FALSE(tree.covers(kBase + 13 * kPage, kPage));     // in the gap
    EXPECT_FALSE(tree.covers(kBase + 20 * kPage, 2 * kPage)); // runs past C
    EXPECT_FALSE(tree.covers(kBase, kPages * kPage));
}

TEST_F(RegionTreeTest, CoversDetectsAOnePageHole)
{
    ASSERT_TRUE(add(0, 4, "x"));
    ASSERT_TRUE(add(5, 4, "y"));
    EXPECT_FALSE(tree.covers(kBase, 9 * kPage));
    EXPECT_TRUE(tree.covers(kBase, 4 * kPage));
    EXPECT_TRUE(tree.covers(kBase + 5 * kPage, 4 * kPage));
    ASSERT_TRUE(add(4, 1, "plug"));
    EXPECT_TRUE(tree.covers(kBase, 9 * kPage));
}

TEST_F(RegionTreeTest, ManyRegionsFillTheArena)
{
    for (size_t i = 0; i < kPages; ++i)
        ASSERT_TRUE(add(i, 1, std::to_string(i)));
    EXPECT_EQ(tree.region_count(), kPages);
    EXPECT_EQ(tree.free_space().free_bytes(), 0u);
    EXPECT_TRUE(tree.covers(kBase, kPages * kPage));
    for (size_t i = 0; i < kPages; ++i) {
        Region* r = tree.find_region_containing(kBase + i * kPage + kPage / 2);
        ASSERT_NE(r, nullptr);
        EXPECT_EQ(r->name(), std::to_string(i));
    }
    EXPECT_EQ(tree.regions_overlapping(kBase + 10 * kPage, 5 * kPage).size(), 5u);
    // Remove every other; coverage and lookups follow.
    for (size_t i = 1; i < kPages; i += 2) {
        Region* r = tree.find_region_containing(kBase + i * kPage);
        ASSERT_NE(r, nullptr);
        auto owned = tree.remove(*r);
        ASSERT_TRUE(tree.release_range(owned->range()));
    }
    EXPECT_EQ(tree.region_count(), kPages / 2);
    EXPECT_EQ(tree.free_space().free_range_count(), kPages / 2);
    EXPECT_FALSE(tree.covers(kBase, 2 * kPage));
    EXPECT_EQ(tree.find_region_containing(kBase + 3 * kPage), nullptr);
    EXPECT_EQ(names_of(tree.regions_overlapping(kBase, 6 * kPage)), (Names { "0", "2", "4" }));
}
