// memory/cow_chain_plan.h without a kernel: which layers a clone's chain
// keeps, and when it is flattened.
#include "memory/cow_chain_plan.h"

#include <gtest/gtest.h>

#include <vector>

namespace faultline::memory {
namespace {

using Runs = std::vector<PageRun>;

TEST(CowChainPlan, UnionMergesOverlappingAndAdjacentRuns)
{
    EXPECT_EQ(union_runs({ { 0, 2 }, { 5, 6 } }, { { 2, 3 }, { 4, 5 }, { 9, 10 } }), (Runs { { 0, 3 }, { 4, 6 }, { 9, 10 } }));
    EXPECT_EQ(union_runs({}, {}), Runs {});
    EXPECT_EQ(clip_runs({ { 0, 4 }, { 6, 9 } }, 2, 7), (Runs { { 2, 4 }, { 6, 7 } }));
}

TEST(CowChainPlan, CoverIsPageExact)
{
    const Runs outer { { 0, 4 }, { 6, 10 } };
    EXPECT_TRUE(runs_cover(outer, { { 0, 4 }, { 7, 9 } }));
    EXPECT_FALSE(runs_cover(outer, { { 3, 7 } })) << "page 4 and 5 are not covered";
    EXPECT_FALSE(runs_cover(outer, { { 9, 11 } }));
    EXPECT_TRUE(runs_cover(outer, {}));
}

TEST(CowChainPlan, KeepsUncoveredLayersAndDropsCoveredAndOutOfWindowOnes)
{
    const Runs l0 { { 0, 8 } }, l1 { { 20, 22 } }, l2 { { 100, 110 } }, l3 { { 4, 6 } };
    // l3 covered by the new top, l0 partly visible, l1 visible, l2 outside
    // the window [0, 64).
    ChainPlan p = plan_chain({ &l0, &l1, &l2, &l3 }, { { 2, 7 } }, 0, 64, {});
    EXPECT_FALSE(p.flatten);
    EXPECT_EQ(p.keep, (std::vector<size_t> { 0, 1 }));
    EXPECT_EQ(p.depth, 4u); // base, l0, l1, top
    // A lower layer covered by the union of two above it.
    const Runs a { { 0, 4 } }, b { { 0, 2 } }, c { { 2, 4 } };
    p = plan_chain({ &a, &b }, c, 0, 64, {});
    EXPECT_EQ(p.keep, (std::vector<size_t> { 1 }));
}

TEST(CowChainPlan, PastTheLimitsTheChainIsFlattened)
{
    std::vector<Runs> layers(8);
    std::vector<const Runs*> below;
    for (size_t i = 0; i < layers.size(); ++i) {
        layers[i] = { { i * 2, i * 2 + 1 } };
        below.push_back(&layers[i]);
    }
    ChainPlan p = plan_chain(below, { { 40, 41 } }, 0, 64, { .max_depth = 8, .max_runs = 64 });
    EXPECT_TRUE(p.flatten);
    EXPECT_EQ(p.depth, 1u);
    EXPECT_TRUE(p.keep.empty());
    Runs many;
    for (size_t i = 0; i < 65; ++i)
        many.push_back({ i * 2, i * 2 + 1 });
    EXPECT_TRUE(plan_chain({}, many, 0, 1000, {}).flatten);
    EXPECT_FALSE(plan_chain({}, Runs(many.begin(), many.begin() + 64), 0, 1000, {}).flatten);
}

} // namespace
} // namespace faultline::memory
