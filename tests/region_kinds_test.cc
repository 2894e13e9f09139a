// Stack regions (guard page, fiber stacks) and immutable regions (EPERM,
// mseal).
#include "test_support.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sys/mman.h>
#include <ucontext.h>

using namespace faultline;
using faultline::testing::kPage;

namespace {

ucontext_t g_main_ctx, g_fiber_ctx;
volatile int g_fiber_depth_reached = 0;

int recurse(int depth)
{
    volatile char frame[512];
    memset(const_cast<char*>(frame), depth, sizeof frame);
    if (depth == 0)
        return frame[0];
    return recurse(depth - 1) + frame[1];
}

void fiber_main()
{
    // About 100 KiB of stack: faults in dozens of stack pages.
    g_fiber_depth_reached = recurse(150) >= 0 ? 150 : -1;
    swapcontext(&g_fiber_ctx, &g_main_ctx);
}

} // namespace

TEST(StackRegion, RunsAFiber)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t size = 64 * kPage;
    auto stack = rt->map_anonymous({ .size = size, .flags = RegionFlags::Stack, .name = "fiber-stack" });
    ASSERT_TRUE(stack) << stack.error().message();
    getcontext(&g_fiber_ctx);
    g_fiber_ctx.uc_stack.ss_sp = *stack;
    g_fiber_ctx.uc_stack.ss_size = size;
    g_fiber_ctx.uc_link = &g_main_ctx;
    makecontext(&g_fiber_ctx, fiber_main, 0);
    swapcontext(&g_main_ctx, &g_fiber_ctx);
    EXPECT_EQ(g_fiber_depth_reached, 150);
    auto st = rt->region_stats(*stack);
    ASSERT_TRUE(st);
    EXPECT_TRUE(has(st->flags, RegionFlags::Stack));
    EXPECT_GT(st->amount_resident, 16 * kPage);
}

TEST(StackRegion, GuardPageRaisesSigsegv)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto stack = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Stack });
    ASSERT_TRUE(stack);
    auto* p = static_cast<volatile char*>(*stack);
    p[0] = 1; // the lowest usable byte is fine
    EXPECT_EXIT(p[-1] = 1, ::testing::KilledBySignal(SIGSEGV), "");
    // The guard is not placeable either: the region owns it.
    auto over = rt->map_anonymous({ .size = kPage, .address = const_cast<char*>(p) - kPage });
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().code(), EEXIST);
}

TEST(StackRegion, AlignedStackKeepsGuardBelow)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto stack = rt->map_anonymous({ .size = 16 * kPage, .alignment = size_t(1) << 20, .flags = RegionFlags::Stack });
    ASSERT_TRUE(stack);
    EXPECT_EQ(uintptr_t(*stack) % (1 << 20), 0u);
    auto* p = static_cast<volatile char*>(*stack);
    p[0] = 1;
    EXPECT_EXIT(p[-1] = 1, ::testing::KilledBySignal(SIGSEGV), "");
    ASSERT_TRUE(rt->unmap(*stack, 16 * kPage));
    // Unmapping the stack returns the guard too: the whole range is free.
    auto again = rt->map_anonymous({ .size = 17 * kPage, .address = static_cast<char*>(*stack) - kPage });
    EXPECT_TRUE(again) << again.error().message();
}

TEST(ImmutableRegion, EveryChangeIsEPERM)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Immutable, .name = "frozen" });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<char*>(*r);
    p[0] = 42; // faults are still served
    EXPECT_EQ(p[0], 42);
    EXPECT_EQ(rt->protect(p, 8 * kPage, Access::Read).error().code(), EPERM);
    EXPECT_EQ(rt->protect(p + kPage, kPage, Access::Read).error().code(), EPERM);
    EXPECT_EQ(rt->unmap(p, 8 * kPage).error().code(), EPERM);
    EXPECT_EQ(rt->unmap(p + kPage, kPage).error().code(), EPERM);
    EXPECT_EQ(rt->set_name(p, 8 * kPage, "thawed").error().code(), EPERM);
    EXPECT_EQ(rt->discard(p, 8 * kPage).error().code(), EPERM);
    EXPECT_EQ(rt->make_immutable(p, 8 * kPage).error().code(), EPERM);
    EXPECT_EQ(p[0], 42);
    EXPECT_EQ(rt->region_stats(p)->name, "frozen");
    EXPECT_EQ(rt->stats().region_count, 1u);
}

TEST(ImmutableRegion, MakeImmutableSplitsAndSeals)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto r = rt->map_anonymous({ .size = 8 * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    memset(p, 3, 8 * kPage);
    ASSERT_TRUE(rt->make_immutable(p + 2 * kPage, 2 * kPage));
    EXPECT_EQ(rt->stats().region_count, 3u);
    EXPECT_EQ(rt->unmap(p + 2 * kPage, kPage).error().code(), EPERM);
    // A range that includes an immutable part is refused as a whole.
    EXPECT_EQ(rt->unmap(p, 8 * kPage).error().code(), EPERM);
    EXPECT_EQ(p[0], 3);
    EXPECT_TRUE(rt->unmap(p, 2 * kPage));
    EXPECT_TRUE(rt->unmap(p + 4 * kPage, 4 * kPage));
    if (!rt->has_feature("mseal"))
        GTEST_SKIP() << "mseal(2) not available: immutability is enforced by the runtime only";
    // The kernel refuses too, even to a caller going around the runtime.
    EXPECT_EQ(mprotect(p + 2 * kPage, kPage, PROT_READ), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(munmap(p + 2 * kPage, kPage), -1);
    EXPECT_EQ(errno, EPERM);
}

TEST(ImmutableRegion, SealedMemorySurvivesRuntime)
{
    char* p = nullptr;
    {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .arena_size = 64 * kPage });
        if (!rt->has_feature("mseal"))
            GTEST_SKIP() << "mseal(2) not available";
        auto r = rt->map_anonymous({ .size = 4 * kPage, .flags = RegionFlags::Immutable });
        ASSERT_TRUE(r);
        p = static_cast<char*>(*r);
        p[0] = 'k';
    }
    // The kernel keeps sealed memory mapped; it is now plain anonymous
    // memory: written bytes remain, untouched pages read zero natively.
    EXPECT_EQ(p[0], 'k');
    EXPECT_EQ(p[3 * kPage], 0);
}
