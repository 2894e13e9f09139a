// SwapBackedVMObject's charges against a fake sink: a fill charges the
// budget for what it places, and a release that forgets a page the fill has
// just placed — between the fill and its accounting — keeps the budget
// charged until the release has dropped the page (uncharge_released).
// Given back at once, the page would be resident and uncharged for the
// length of the release's madvise, room another fill could take.
#include "memory/objects/swap_backed_vm_object.h"
#include "support/fake_fault_port.h"
#include "support/missing_fault.h"

#include <gtest/gtest.h>

#include <functional>

namespace faultline::testing {
namespace {

using memory::FaultContext;
using memory::PageBudget;
using memory::PageSink;
using memory::PageState;
using memory::Resolution;
using memory::SwapBackedVMObject;
using memory::SwapSpace;
using memory::SwapTarget;

constexpr size_t kPage = 4096;
constexpr size_t kPages = 256;
constexpr uintptr_t kBase = uintptr_t(1) << 40;

// Never read or written here: the tests do not evict.
class NoTarget final : public SwapTarget {
public:
    bool read(uint32_t, void*, io::Operation*, memory::IoPort*) noexcept override { return false; }
    void write(Write* writes, size_t count) noexcept override
    {
        for (size_t i = 0; i < count; ++i)
            writes[i].result = -EIO;
    }
};

// The fake port, plus something to do at the n-th zero fill (before it).
class HookedSink final : public PageSink {
public:
    size_t page_size() const noexcept override { return kPage; }
    uffd::FillResult zero(uintptr_t start, size_t len, uffd::ZeroFill how) noexcept override
    {
        if (++zeros == hook_at && hook)
            hook();
        return port.zero(start, len, how);
    }
    uffd::FillResult copy(uintptr_t dst, const void* src, size_t len, bool wp) noexcept override
    {
        return port.copy(dst, src, len, wp);
    }
    uffd::FillResult map_cached(uintptr_t dst, size_t len, bool wp) noexcept override
    {
        return port.map_cached(dst, len, wp);
    }
    uffd::FillResult write_protect(uintptr_t start, size_t len, bool protect) noexcept override
    {
        return port.write_protect(start, len, protect);
    }
    FakeFaultPort port { kPage };
    size_t zeros = 0, hook_at = 0;
    std::function<void()> hook;
};

class SwapBackedTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto space = std::make_shared<SwapSpace>();
        budget_ = std::make_shared<PageBudget>(64, 90, 50, 8, nullptr, nullptr);
        space->budget = budget_;
        auto slots = memory::SwapSlots::create(kPages);
        ASSERT_TRUE(slots);
        space->slots = std::move(*slots);
        space->target = std::make_unique<NoTarget>();
        auto o = SwapBackedVMObject::try_create(kPages * kPage, kPage, std::move(space));
        ASSERT_TRUE(o) << o.error().message();
        object_ = *o;
    }
    FaultContext context(size_t page, unsigned around) const
    {
        return missing_fault(kBase, kPages, kPage, page, true, around, around);
    }
    std::shared_ptr<PageBudget> budget_;
    boost::intrusive_ptr<SwapBackedVMObject> object_;
};

TEST_F(SwapBackedTest, AFillChargesWhatItPlacesAndAReleaseGivesItBack)
{
    HookedSink sink;
    auto out = object_->handle_fault(context(0, 4), sink);
    ASSERT_EQ(out.resolution, Resolution::Installed);
    EXPECT_EQ(budget_->resident(), 4u) << "the window's four pages";
    EXPECT_EQ(object_->resident_pages(), 4u);
    const size_t charged = object_->release_keeping_charge(0, 4);
    EXPECT_EQ(charged, 4u);
    EXPECT_EQ(budget_->resident(), 4u) << "kept until the caller has dropped the pages";
    object_->uncharge_released(charged);
    EXPECT_EQ(budget_->resident(), 0u);
    EXPECT_EQ(object_->resident_pages(), 0u);
}

TEST_F(SwapBackedTest, APageForgottenBetweenItsFillAndItsAccountingStaysChargedUntilTheReleaseEnds)
{
    // Page 5 is there already, so the window 4..8 is filled in two runs:
    // page 4, then 6..7. Before the second run, a release forgets page 4 —
    // filled and settled, not yet accounted — and has yet to drop it.
    HookedSink sink;
    (void)object_->handle_fault(context(5, 1), sink);
    ASSERT_EQ(budget_->resident(), 1u);
    size_t released = SIZE_MAX;
    sink.zeros = 0;
    sink.hook_at = 2;
    sink.hook = [&] { released = object_->release_keeping_charge(4, 1); };
    auto out = object_->handle_fault(context(6, 4), sink);
    ASSERT_EQ(out.resolution, Resolution::Installed);
    ASSERT_EQ(sink.zeros, 2u) << "two runs";
    EXPECT_EQ(released, 0u) << "page 4 was not yet charged to the page when it was forgotten";
    EXPECT_EQ(object_->page_state(4), PageState::Unpopulated);
    EXPECT_EQ(object_->resident_pages(), 3u) << "pages 5, 6 and 7";
    // The release is under way: page 4 is still mapped until it drops it,
    // so its charge must still be held (with the window's other unused
    // charge, page 5's: what a fill gives back waits whole).
    EXPECT_GE(budget_->resident(), 4u) << "page 4's charge waits for the release";
    object_->uncharge_released(released);
    EXPECT_EQ(budget_->resident(), 3u) << "and goes with it";
}

TEST_F(SwapBackedTest, WithNoReleaseUnderWayAnUnusedChargeGoesBackAtOnce)
{
    // Pages 4..7 are there; a fault on 4 (raised before it was placed, read
    // after) charges its window and places nothing new.
    HookedSink sink;
    (void)object_->handle_fault(context(4, 4), sink);
    ASSERT_EQ(budget_->resident(), 4u);
    (void)object_->handle_fault(context(4, 4), sink);
    EXPECT_EQ(budget_->resident(), 4u) << "nothing new charged";
}

} // namespace
} // namespace faultline::testing
