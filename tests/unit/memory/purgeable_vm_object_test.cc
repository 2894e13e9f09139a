// PurgeableVMObject's answers to faults, against a fake sink: pages being
// purged wait for the purger, purged pages answer by the region's option,
// and fault-around never fills a page that must fault on its own.
#include "memory/objects/purgeable_vm_object.h"
#include "support/fake_fault_port.h"
#include "support/missing_fault.h"

#include <gtest/gtest.h>

namespace faultline::testing {
namespace {

using memory::FaultContext;
using memory::PurgeableVMObject;
using memory::Resolution;
using memory::Volatility;

constexpr size_t kPage = 4096;
constexpr uintptr_t kBase = uintptr_t(1) << 40;
constexpr size_t kPages = 64;

class RecordingPort final : public memory::PurgedAccessPort {
public:
    bool post(PurgeableVMObject&, uintptr_t page, memory::PendingToken token, memory::CompletionPort&) noexcept override
    {
        if (full)
            return false;
        posted.push_back({ page, token.slot });
        return true;
    }
    struct Post {
        uintptr_t page;
        uint32_t slot;
    };
    std::vector<Post> posted;
    bool full = false;
};

class NullCompletions final : public memory::CompletionPort {
public:
    void post(memory::PendingToken, int64_t) noexcept override {}
};

FaultContext context(size_t page, memory::CompletionPort* completions = nullptr)
{
    FaultContext ctx = missing_fault(kBase, kPages, kPage, page, true, 8, 8);
    if (completions) {
        ctx.token = { 3, 1 };
        ctx.completions = completions;
    }
    return ctx;
}

boost::intrusive_ptr<PurgeableVMObject> make(PurgedAccess mode, memory::PurgedAccessPort* port = nullptr)
{
    return PurgeableVMObject::try_create(kPages * kPage, kPage, mode, [](void*) { return true; }, port).value();
}

TEST(PurgeableObject, PurgingPageWaitsForThePurger)
{
    auto o = make(PurgedAccess::Zero);
    FakeFaultPort sink(kPage);
    o->volatility().set(3, Volatility::Purging);
    EXPECT_EQ(o->handle_fault(context(3), sink).resolution, Resolution::InFlight);
    EXPECT_TRUE(sink.calls.empty());
}

TEST(PurgeableObject, WindowSkipsPagesThatMustFaultOnTheirOwn)
{
    auto o = make(PurgedAccess::Sigbus);
    FakeFaultPort sink(kPage);
    o->volatility().set(1, Volatility::Purged);  // SIGBUS when touched
    o->volatility().set(2, Volatility::Purging); // the purger's
    o->volatility().set(5, Volatility::Dropped); // nothing lost: may be filled
    auto out = o->handle_fault(context(4), sink);
    EXPECT_EQ(out.resolution, Resolution::Installed);
    EXPECT_FALSE(o->page_states().populated(1));
    EXPECT_FALSE(o->page_states().populated(2));
    EXPECT_TRUE(o->page_states().populated(0));
    for (size_t i = 3; i < 8; ++i)
        EXPECT_TRUE(o->page_states().populated(i)) << i;
}

// In Zero mode too: a purged page nobody touched stays purged (filling it
// would undo the purge).
TEST(PurgeableObject, WindowLeavesPurgedPagesInZeroMode)
{
    auto o = make(PurgedAccess::Zero);
    FakeFaultPort sink(kPage);
    o->volatility().set(1, Volatility::Purged);
    o->volatility().set(6, Volatility::Purged);
    auto out = o->handle_fault(context(4), sink);
    EXPECT_EQ(out.resolution, Resolution::Installed);
    EXPECT_FALSE(o->page_states().populated(1));
    EXPECT_FALSE(o->page_states().populated(6));
    EXPECT_TRUE(o->page_states().populated(4));
    EXPECT_TRUE(o->page_states().populated(5));
}

TEST(PurgeableObject, PurgedPageAnswersByItsOption)
{
    FakeFaultPort sink(kPage);
    auto zero = make(PurgedAccess::Zero);
    zero->volatility().set(0, Volatility::Purged);
    EXPECT_EQ(zero->handle_fault(context(0), sink).resolution, Resolution::Installed);
    EXPECT_EQ(zero->counters().purged_refaults.load(), 1u);

    auto sigbus = make(PurgedAccess::Sigbus);
    sigbus->volatility().set(0, Volatility::Purged);
    EXPECT_EQ(sigbus->handle_fault(context(0), sink).resolution, Resolution::Sigbus);
    EXPECT_TRUE(sigbus->volatility().poisoned(0));
    EXPECT_EQ(sigbus->volatility().get(0), Volatility::Purged);

    RecordingPort port;
    NullCompletions completions;
    auto callback = make(PurgedAccess::Callback, &port);
    callback->volatility().set(0, Volatility::Purged);
    FakeFaultPort fresh(kPage); // the other objects' pages are in `sink`
    auto& sink2 = fresh;
    EXPECT_EQ(callback->handle_fault(context(0, &completions), sink2).resolution, Resolution::Pending);
    ASSERT_EQ(port.posted.size(), 1u);
    EXPECT_EQ(port.posted[0].page, kBase);
    EXPECT_TRUE(sink2.calls.empty());
    // Without a pending slot, or with the worker's queue full: retried.
    EXPECT_EQ(callback->handle_fault(context(0), sink2).resolution, Resolution::Retry);
    port.full = true;
    EXPECT_EQ(callback->handle_fault(context(0, &completions), sink2).resolution, Resolution::Retry);
    // The callback's answer: zeros for the page alone, or SIGBUS.
    auto out = callback->resume_fault(context(0, &completions), sink2, 0);
    EXPECT_EQ(out.resolution, Resolution::Installed);
    EXPECT_EQ(out.pages, 1u);
    callback->volatility().set(1, Volatility::Purged);
    EXPECT_EQ(callback->resume_fault(context(1, &completions), sink2, -EFAULT).resolution, Resolution::Sigbus);
    EXPECT_TRUE(callback->volatility().poisoned(1));
    // A page made non-volatile while the callback was asked is no longer
    // purged memory: the refusal no longer applies, it gets zeros.
    callback->volatility().set(2, Volatility::NonVolatile);
    auto late = callback->resume_fault(context(2, &completions), sink2, -EFAULT);
    EXPECT_EQ(late.resolution, Resolution::Installed);
    EXPECT_FALSE(callback->volatility().poisoned(2));
}

} // namespace
} // namespace faultline::testing
