// SwapSlots (memory/swap_slots.h): every slot handed out once until freed,
// consecutive allocations consecutive, a full space says so, freeing is
// idempotent, and a capacity that is not a multiple of 64 never hands out
// a slot past its end.
#include "memory/swap_slots.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace faultline::memory {
namespace {

TEST(SwapSlots, HandsOutEverySlotOnceThenSaysFull)
{
    auto slots = SwapSlots::create(130);
    ASSERT_TRUE(slots);
    std::set<uint32_t> seen;
    for (int i = 0; i < 130; ++i) {
        const uint32_t s = (*slots)->allocate();
        ASSERT_NE(s, SwapSlots::kNone);
        ASSERT_LT(s, 130u);
        EXPECT_TRUE(seen.insert(s).second) << "slot " << s << " handed out twice";
    }
    EXPECT_EQ((*slots)->used(), 130u);
    EXPECT_EQ((*slots)->allocate(), SwapSlots::kNone);
    (*slots)->free(77);
    (*slots)->free(77); // twice: no effect
    EXPECT_EQ((*slots)->used(), 129u);
    EXPECT_EQ((*slots)->allocate(), 77u);
    (*slots)->free(1000); // past the end: ignored
    EXPECT_EQ((*slots)->used(), 130u);
}

TEST(SwapSlots, ConsecutiveAllocationsAreConsecutive)
{
    auto slots = SwapSlots::create(1024);
    ASSERT_TRUE(slots);
    const uint32_t first = (*slots)->allocate();
    for (uint32_t i = 1; i < 100; ++i)
        EXPECT_EQ((*slots)->allocate(), first + i);
}

TEST(SwapSlots, BadSizesAreRefused)
{
    EXPECT_FALSE(SwapSlots::create(0));
    EXPECT_FALSE(SwapSlots::create(size_t(SwapSlots::kNone)));
}

TEST(SwapSlots, ConcurrentFreesAndAllocationsNeverShareASlot)
{
    auto created = SwapSlots::create(4096);
    ASSERT_TRUE(created);
    SwapSlots& slots = **created;
    std::vector<std::thread> threads;
    std::vector<std::vector<uint32_t>> held(4);
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int round = 0; round < 2000; ++round) {
                const uint32_t s = slots.allocate();
                if (s != SwapSlots::kNone)
                    held[size_t(t)].push_back(s);
                if (held[size_t(t)].size() > 200) {
                    slots.free(held[size_t(t)].front());
                    held[size_t(t)].erase(held[size_t(t)].begin());
                }
            }
        });
    for (auto& t : threads)
        t.join();
    std::set<uint32_t> all;
    size_t count = 0;
    for (auto& h : held)
        for (uint32_t s : h) {
            all.insert(s);
            ++count;
        }
    EXPECT_EQ(all.size(), count) << "a slot held by two owners";
    EXPECT_EQ(slots.used(), count);
}

} // namespace
} // namespace faultline::memory
