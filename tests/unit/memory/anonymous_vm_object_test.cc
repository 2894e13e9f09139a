// AnonymousVMObject's answers to faults, against a fake sink: which pages it
// fills, how (zero page or private), which window, and what it reports.
#include "memory/objects/anonymous_vm_object.h"
#include "support/fake_fault_port.h"
#include "support/missing_fault.h"

#include <gtest/gtest.h>

namespace faultline::testing {
namespace {

using memory::AnonymousVMObject;
using memory::FaultContext;
using memory::PageState;
using memory::Resolution;

constexpr size_t kPage = 4096;
constexpr uintptr_t kBase = uintptr_t(1) << 40;

class AnonymousObjectTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto o = AnonymousVMObject::try_create_with_size(kPages * kPage, kPage);
        ASSERT_TRUE(o);
        object_ = *o;
    }
    // AfterWindow: the window is filled with the fault, so one call shows it.
    FaultContext context(size_t page, bool write, unsigned min = 4, unsigned max = 4) const
    {
        return missing_fault(kBase, kPages, kPage, page, write, min, max);
    }
    static constexpr size_t kPages = 4096;
    boost::intrusive_ptr<AnonymousVMObject> object_;
    FakeFaultPort sink_ { kPage };
};

TEST_F(AnonymousObjectTest, ReadFaultMapsTheZeroPageOverItsWindow)
{
    auto out = object_->handle_fault(context(6, false), sink_);
    EXPECT_EQ(out.resolution, Resolution::Installed);
    EXPECT_EQ(out.kind, memory::FillKind::Zero);
    EXPECT_EQ(out.pages, 4u);
    ASSERT_EQ(sink_.calls.size(), 1u);
    EXPECT_EQ(sink_.calls[0].start, kBase + 4 * kPage);
    EXPECT_EQ(sink_.calls[0].len, 4 * kPage);
    EXPECT_EQ(sink_.calls[0].detail, int(uffd::ZeroFill::SharedZeroPage));
    EXPECT_EQ(out.wake_lo, kBase + 4 * kPage);
    EXPECT_EQ(out.wake_hi, kBase + 8 * kPage);
    for (size_t i = 4; i < 8; ++i)
        EXPECT_EQ(object_->page_state(i), PageState::ZeroMapped);
    EXPECT_EQ(object_->page_state(3), PageState::Unpopulated);
}

TEST_F(AnonymousObjectTest, WriteFaultInstallsPrivatePages)
{
    auto out = object_->handle_fault(context(0, true), sink_);
    EXPECT_EQ(out.resolution, Resolution::Installed);
    EXPECT_EQ(sink_.calls[0].detail, int(uffd::ZeroFill::Private));
    EXPECT_EQ(object_->page_state(0), PageState::Present);
}

TEST_F(AnonymousObjectTest, PopulatedPagesSplitTheWindowIntoRuns)
{
    (void)object_->handle_fault(context(5, true, 1, 1), sink_); // page 5 only
    sink_.calls.clear();
    auto out = object_->handle_fault(context(6, false), sink_);   // window 4..8 around a populated 5
    EXPECT_EQ(out.resolution, Resolution::Installed);
    ASSERT_EQ(sink_.calls.size(), 2u);
    EXPECT_EQ(sink_.calls[0].start, kBase + 4 * kPage);
    EXPECT_EQ(sink_.calls[0].len, kPage);
    EXPECT_EQ(sink_.calls[1].start, kBase + 6 * kPage);
    EXPECT_EQ(sink_.calls[1].len, 2 * kPage);
    EXPECT_EQ(object_->page_state(5), PageState::Present) << "a populated page keeps its state";
}

TEST_F(AnonymousObjectTest, TheFaultingPageIsFilledWhateverItsStateSays)
{
    (void)object_->handle_fault(context(2, true, 1, 1), sink_);
    sink_.calls.clear();
    sink_.installed.clear(); // the kernel dropped it behind the object's back
    auto out = object_->handle_fault(context(2, true, 1, 1), sink_);
    EXPECT_EQ(out.resolution, Resolution::Installed);
    ASSERT_EQ(sink_.calls.size(), 1u);
    EXPECT_EQ(sink_.calls[0].start, kBase + 2 * kPage);
}

TEST_F(AnonymousObjectTest, FailureOnTheFaultingPageDecides)
{
    sink_.fail_zero = { ENOMEM, uffd::FillStatus::Failed, kBase + 6 * kPage };
    auto out = object_->handle_fault(context(6, true), sink_);
    EXPECT_EQ(out.resolution, Resolution::Sigbus);
    EXPECT_EQ(object_->page_state(6), PageState::Unpopulated);
    sink_.fail_zero = { ENOENT, uffd::FillStatus::RegionGone, kBase + 7 * kPage };
    EXPECT_EQ(object_->handle_fault(context(7, true), sink_).resolution, Resolution::RegionGone);
    sink_.fail_zero = { EAGAIN, uffd::FillStatus::Retry, kBase + 8 * kPage };
    EXPECT_EQ(object_->handle_fault(context(8, true), sink_).resolution, Resolution::Retry);
}

TEST_F(AnonymousObjectTest, FailureElsewhereInTheWindowIsNobodysConcern)
{
    // Page 5 populated splits the window into runs [4] and [6, 8); the fill
    // of [4] fails, the faulting page 6 is in the other run.
    (void)object_->handle_fault(context(5, true, 1, 1), sink_);
    sink_.fail_zero = { ENOMEM, uffd::FillStatus::Failed, kBase + 4 * kPage };
    auto out = object_->handle_fault(context(6, true), sink_);
    EXPECT_EQ(out.resolution, Resolution::Installed);
    EXPECT_EQ(object_->page_state(4), PageState::Unpopulated);
    EXPECT_EQ(object_->page_state(6), PageState::Present);
    // The whole claimed window is woken: its threads fault again if their
    // page did not make it.
    EXPECT_EQ(out.wake_lo, kBase + 4 * kPage);
    EXPECT_EQ(out.wake_hi, kBase + 8 * kPage);
}

TEST_F(AnonymousObjectTest, SequentialFaultsGrowTheWindow)
{
    // min 32, max 512: a toucher going up faults at the end of each window.
    size_t page = 0;
    std::vector<size_t> sizes;
    for (int i = 0; i < 6; ++i) {
        sink_.calls.clear();
        auto out = object_->handle_fault(context(page, true, 32, 512), sink_);
        ASSERT_EQ(out.resolution, Resolution::Installed);
        sizes.push_back(out.pages);
        page += out.pages;
    }
    EXPECT_EQ(sizes, (std::vector<size_t> { 32, 64, 192, 512, 512, 512 }));
}

TEST_F(AnonymousObjectTest, IsolatedFaultsKeepTheSmallWindow)
{
    for (size_t page = 0; page < kPages; page += 256) {
        auto out = object_->handle_fault(context(page + 100, false, 32, 512), sink_);
        EXPECT_EQ(out.pages, 32u) << "at page " << page + 100;
    }
}

TEST_F(AnonymousObjectTest, WakeFirstModeFillsOnlyTheFaultingPageThenTheRest)
{
    FaultContext ctx = context(6, false);
    ctx.wake_order = WakeOrder::BeforeWindow;
    auto out = object_->handle_fault(ctx, sink_);
    EXPECT_EQ(out.pages, 1u);
    EXPECT_TRUE(out.around_later);
    ASSERT_EQ(sink_.calls.size(), 1u);
    EXPECT_EQ(sink_.calls[0].len, kPage);
    auto more = object_->fault_around(ctx, sink_);
    EXPECT_EQ(more.pages, 3u);
    EXPECT_EQ(more.wake_lo, kBase + 4 * kPage);
    EXPECT_EQ(more.wake_hi, kBase + 8 * kPage);
    for (size_t i = 4; i < 8; ++i)
        EXPECT_TRUE(sink_.is_installed(kBase + i * kPage));
}

TEST_F(AnonymousObjectTest, AdaptiveOrderLeavesIsolatedWindowsForAfterTheWake)
{
    FaultContext ctx = context(100, true, 32, 512);
    ctx.wake_order = WakeOrder::Adaptive;
    auto out = object_->handle_fault(ctx, sink_);
    EXPECT_EQ(out.resolution, Resolution::Installed);
    EXPECT_EQ(out.pages, 1u) << "an isolated fault: only the page the thread waits for";
    EXPECT_TRUE(out.around_later);
    EXPECT_EQ(object_->fault_around(ctx, sink_).pages, 31u);
    // The next fault above the window is a stream: filled with the fault,
    // and the window after it is read ahead once the thread is woken.
    FaultContext next = context(128, true, 32, 512);
    next.wake_order = WakeOrder::Adaptive;
    out = object_->handle_fault(next, sink_);
    EXPECT_EQ(out.pages, 64u);
    EXPECT_TRUE(out.around_later);
    auto ahead = object_->fault_around(next, sink_);
    EXPECT_EQ(ahead.pages, 192u) << "the window a fault at 192 would get: twice the 96 pages below it";
    EXPECT_EQ(ahead.wake_lo, kBase + 192 * kPage);
    EXPECT_EQ(ahead.wake_hi, kBase + 384 * kPage);
    // Faulting at 384 now continues the stream from there.
    FaultContext after = context(384, true, 32, 512);
    after.wake_order = WakeOrder::Adaptive;
    EXPECT_EQ(object_->handle_fault(after, sink_).pages, 512u);
}

TEST_F(AnonymousObjectTest, AFaultOnAClaimedPageIsLeftToItsClaimer)
{
    // Another handler is filling page 10 (claimed, not yet settled).
    ASSERT_TRUE(const_cast<memory::PageStates&>(object_->states()).claim(10));
    auto out = object_->handle_fault(context(10, true), sink_);
    EXPECT_EQ(out.resolution, Resolution::InFlight);
    EXPECT_TRUE(sink_.calls.empty()) << "nothing is filled twice";
    // A window around another page skips the claimed one.
    out = object_->handle_fault(context(9, true), sink_);
    EXPECT_EQ(out.resolution, Resolution::Installed);
    ASSERT_EQ(sink_.calls.size(), 2u);
    EXPECT_EQ(sink_.calls[0].start, kBase + 8 * kPage);
    EXPECT_EQ(sink_.calls[0].len, 2 * kPage);
    EXPECT_EQ(sink_.calls[1].start, kBase + 11 * kPage);
    EXPECT_EQ(sink_.calls[1].len, kPage);
    EXPECT_EQ(object_->page_state(10), PageState::Filling) << "still the claimer's to settle";
}

TEST_F(AnonymousObjectTest, AfterWindowNeverDefers)
{
    auto out = object_->handle_fault(context(100, true, 32, 512), sink_);
    EXPECT_EQ(out.pages, 32u);
    EXPECT_FALSE(out.around_later);
}

TEST_F(AnonymousObjectTest, ReleaseForgetsPages)
{
    (void)object_->handle_fault(context(0, true), sink_);
    object_->release_pages(0, 2);
    EXPECT_EQ(object_->page_state(0), PageState::Unpopulated);
    EXPECT_EQ(object_->page_state(1), PageState::Unpopulated);
    EXPECT_EQ(object_->page_state(2), PageState::Present);
}

} // namespace
} // namespace faultline::testing
