// VolatileSpans: carving and replacing the volatile ranges of an object.
#include "memory/objects/volatile_spans.h"

#include <gtest/gtest.h>

#include <vector>

namespace faultline::testing {
namespace {

using memory::VolatileSpans;
using Span = VolatileSpans::Span;

std::vector<Span> all(const VolatileSpans& v)
{
    std::vector<Span> out;
    v.for_each([&](const Span& s) { out.push_back(s); });
    return out;
}

bool same(const Span& a, size_t first, size_t end, uint64_t seq)
{
    return a.first == first && a.end == end && a.sequence == seq;
}

TEST(VolatileSpans, AddCarvesOlderSpans)
{
    VolatileSpans v;
    v.add(0, 10, 1, PurgePriority::Normal);
    v.add(4, 6, 2, PurgePriority::High);
    auto s = all(v);
    ASSERT_EQ(s.size(), 3u);
    EXPECT_TRUE(same(s[0], 0, 4, 1));
    EXPECT_TRUE(same(s[1], 4, 6, 2));
    EXPECT_EQ(s[1].priority, PurgePriority::High);
    EXPECT_TRUE(same(s[2], 6, 10, 1));
    // A span over several replaces them all where it covers them.
    v.add(2, 8, 3, PurgePriority::Low);
    s = all(v);
    ASSERT_EQ(s.size(), 3u);
    EXPECT_TRUE(same(s[0], 0, 2, 1));
    EXPECT_TRUE(same(s[1], 2, 8, 3));
    EXPECT_TRUE(same(s[2], 8, 10, 1));
}

TEST(VolatileSpans, RemoveLeavesTheOutside)
{
    VolatileSpans v;
    v.add(0, 4, 1, PurgePriority::Normal);
    v.add(6, 12, 2, PurgePriority::Normal);
    v.remove(2, 8);
    auto s = all(v);
    ASSERT_EQ(s.size(), 2u);
    EXPECT_TRUE(same(s[0], 0, 2, 1));
    EXPECT_TRUE(same(s[1], 8, 12, 2));
    v.remove(0, 100);
    EXPECT_TRUE(v.empty());
    v.remove(5, 5); // empty: nothing
    EXPECT_TRUE(v.empty());
}

TEST(VolatileSpans, OverlappingIsClipped)
{
    VolatileSpans v;
    v.add(0, 4, 1, PurgePriority::Normal);
    v.add(10, 20, 2, PurgePriority::Normal);
    std::vector<Span> seen;
    v.for_each_overlapping(2, 12, [&](const Span& s) { seen.push_back(s); });
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_TRUE(same(seen[0], 2, 4, 1));
    EXPECT_TRUE(same(seen[1], 10, 12, 2));
    seen.clear();
    v.for_each_overlapping(4, 10, [&](const Span& s) { seen.push_back(s); });
    EXPECT_TRUE(seen.empty());
}

} // namespace
} // namespace faultline::testing
