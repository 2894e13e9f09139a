// The dispatcher's decisions, without a kernel: synthetic fault messages,
// real regions and objects in a RegionTree, and a FakeFaultPort recording
// what would have been asked of userfaultfd.
#include "fault/dispatcher.h"
#include "memory/objects/anonymous_vm_object.h"
#include "support/fake_fault_port.h"

#include <gtest/gtest.h>

#include <linux/userfaultfd.h>

#include <memory>
#include <mutex>
#include <thread>

namespace faultline::testing {
namespace {

using fault::CompletionQueue;
using fault::Dispatcher;
using fault::DispatchOptions;
using fault::PendingFaultTable;
using memory::Outcome;
using memory::Region;

constexpr size_t kPage = 4096;
constexpr uintptr_t kArena = uintptr_t(1) << 40;

// An object whose answers the test scripts; it remembers the last context.
class ScriptedObject final : public memory::VMObject {
public:
    static boost::intrusive_ptr<ScriptedObject> create(size_t pages)
    {
        return new ScriptedObject(pages * kPage, std::move(*memory::PageStates::create(pages)));
    }
    const char* kind_name() const noexcept override { return "scripted"; }
    Outcome handle_fault(const memory::FaultContext& ctx, memory::PageSink& sink) noexcept override
    {
        last = ctx;
        ++handled;
        if (answer.resolution == memory::Resolution::Installed)
            (void)sink.copy(ctx.page, nullptr, kPage, false);
        return answer;
    }
    Outcome resume_fault(const memory::FaultContext& ctx, memory::PageSink& sink, int64_t result) noexcept override
    {
        last = ctx;
        last_result = result;
        ++resumed;
        if (resume_answer.resolution == memory::Resolution::Installed)
            (void)sink.copy(ctx.page, nullptr, kPage, false);
        return resume_answer;
    }
    Outcome answer = Outcome::installed(memory::FillKind::Backing, 1);
    Outcome resume_answer = Outcome::installed(memory::FillKind::Backing, 1);
    memory::FaultContext last;
    int64_t last_result = 0;
    int handled = 0;
    int resumed = 0;

private:
    ScriptedObject(size_t size, memory::PageStates states) : VMObject(size, kPage, std::move(states)) {}
};

uffd_msg fault_at(uintptr_t address, uint64_t flags = 0, unsigned tid = 7)
{
    uffd_msg m {};
    m.event = UFFD_EVENT_PAGEFAULT;
    m.arg.pagefault.address = address;
    m.arg.pagefault.flags = flags;
    m.arg.pagefault.feat.ptid = tid;
    return m;
}

class DispatcherTest : public ::testing::Test {
protected:
    explicit DispatcherTest(size_t capacity = 64)
        : tree_(kArena, size_t(1) << 30, kPage)
        , pending_(capacity)
        , completions_(capacity)
    {
        options_.around = { 4, 4 };
        // Windows filled before the wake unless a test says otherwise, so
        // each serve() shows its whole window.
        options_.wake_order = WakeOrder::AfterWindow;
    }
    void SetUp() override { ASSERT_TRUE(completions_.ready()); }

    Dispatcher& dispatcher()
    {
        if (!dispatcher_)
            dispatcher_ = std::make_unique<Dispatcher>(tree_, pending_, completions_, counters_, threads_, options_);
        return *dispatcher_;
    }

    Region& add_region(uintptr_t base, size_t pages, boost::intrusive_ptr<memory::VMObject> object = nullptr)
    {
        if (!object)
            object = *memory::AnonymousVMObject::try_create_with_size(pages * kPage, kPage);
        std::unique_lock lock(tree_.lock());
        EXPECT_TRUE(tree_.place_specifically(base, pages * kPage));
        Region::Params p;
        p.range = { base, pages * kPage };
        p.object = std::move(object);
        p.access = Access::ReadWrite;
        p.max_access = Access::ReadWrite;
        auto region = Region::try_create(std::move(p));
        Region* raw = region->get();
        tree_.insert(std::move(*region));
        return *raw;
    }

    void serve(std::initializer_list<uffd_msg> messages)
    {
        std::vector<uffd_msg> v(messages);
        dispatcher().serve(v.data(), v.size(), port_);
    }

    memory::RegionTree tree_;
    PendingFaultTable pending_;
    CompletionQueue completions_;
    fault::ServiceCounters counters_;
    fault::ThreadFaultCounters threads_;
    DispatchOptions options_;
    std::unique_ptr<Dispatcher> dispatcher_;
    FakeFaultPort port_ { kPage };
};

TEST_F(DispatcherTest, ReadFaultInstallsTheZeroPageWindowAndWakesIt)
{
    Region& r = add_region(kArena, 16);
    serve({ fault_at(kArena + 5 * kPage + 123) });
    ASSERT_EQ(port_.count("zero"), 1u);
    EXPECT_EQ(port_.calls[0].start, kArena + 4 * kPage); // the aligned block of 4 around page 5
    EXPECT_EQ(port_.calls[0].len, 4 * kPage);
    EXPECT_EQ(port_.calls[0].detail, int(uffd::ZeroFill::SharedZeroPage));
    ASSERT_EQ(port_.count("wake"), 1u);
    EXPECT_EQ(port_.calls.back().start, kArena + 4 * kPage);
    EXPECT_EQ(port_.calls.back().len, 4 * kPage);
    EXPECT_EQ(r.zero_faults(), 1u);
    EXPECT_EQ(r.pages_installed(), 4u);
    EXPECT_EQ(r.faults_in_flight(), 0u);
    EXPECT_EQ(pending_.in_use(), 0u);
    EXPECT_EQ(counters_.fault_events.load(), 1u);
}

TEST_F(DispatcherTest, WriteFaultInstallsPrivatePages)
{
    add_region(kArena, 16);
    serve({ fault_at(kArena, UFFD_PAGEFAULT_FLAG_WRITE) });
    ASSERT_EQ(port_.count("zero"), 1u);
    EXPECT_EQ(port_.calls[0].detail, int(uffd::ZeroFill::Private));
}

TEST_F(DispatcherTest, DuplicatesInOneBatchAreDroppedAndWokenOnce)
{
    add_region(kArena, 16);
    serve({ fault_at(kArena, 0, 1), fault_at(kArena + 100, 0, 2), fault_at(kArena, UFFD_PAGEFAULT_FLAG_WRITE, 3) });
    EXPECT_EQ(port_.count("zero"), 1u);
    EXPECT_EQ(counters_.deduplicated.load(), 2u);
    EXPECT_EQ(port_.count("wake"), 1u);
    EXPECT_EQ(pending_.in_use(), 0u) << "claims are released at the end of the batch";
}

TEST_F(DispatcherTest, OnlyServedRunsAreWoken)
{
    add_region(kArena, 64);
    // Two faults far apart, one pair of neighbours: three windows, of which
    // the neighbours' touch (4..8 and 8..12) and merge into one wake.
    serve({ fault_at(kArena + 40 * kPage), fault_at(kArena + 5 * kPage), fault_at(kArena + 9 * kPage) });
    std::vector<FakeFaultPort::Call> wakes;
    for (auto& c : port_.calls)
        if (c.verb == "wake")
            wakes.push_back(c);
    ASSERT_EQ(wakes.size(), 2u);
    EXPECT_EQ(wakes[0].start, kArena + 4 * kPage);
    EXPECT_EQ(wakes[0].len, 8 * kPage);
    EXPECT_EQ(wakes[1].start, kArena + 40 * kPage);
    EXPECT_EQ(wakes[1].len, 4 * kPage);
    // Nothing between the runs was woken.
    for (uintptr_t p = kArena + 12 * kPage; p < kArena + 40 * kPage; p += kPage)
        EXPECT_FALSE(port_.woken.count(p)) << "page " << (p - kArena) / kPage;
}

TEST_F(DispatcherTest, FaultWithoutRegionIsWokenAndCountedStale)
{
    serve({ fault_at(kArena + 3 * kPage) });
    EXPECT_EQ(counters_.stale.load(), 1u);
    EXPECT_EQ(port_.count("zero"), 0u);
    EXPECT_TRUE(port_.woken.count(kArena + 3 * kPage));
}

TEST_F(DispatcherTest, WriteProtectFaultWithoutRegionLiftsTheProtection)
{
    serve({ fault_at(kArena, UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_WRITE) });
    ASSERT_EQ(port_.count("unwp"), 1u);
    EXPECT_TRUE(port_.woken.count(kArena));
    EXPECT_EQ(counters_.write_protect_faults.load(), 1u);
}

TEST_F(DispatcherTest, UnexpectedWriteProtectFaultOnAnObjectIsLiftedNotLooped)
{
    Region& r = add_region(kArena, 4);
    serve({ fault_at(kArena + kPage, UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_WRITE) });
    ASSERT_EQ(port_.count("unwp"), 1u);
    EXPECT_EQ(port_.count("zero"), 0u) << "a write-protect fault is not a missing page";
    EXPECT_EQ(r.counters().faults(memory::FillKind::WriteProtect), 1u);
    EXPECT_TRUE(port_.woken.count(kArena + kPage));
}

TEST_F(DispatcherTest, MinorFaultMapsThePageCachePage)
{
    add_region(kArena, 4);
    serve({ fault_at(kArena, UFFD_PAGEFAULT_FLAG_MINOR) });
    EXPECT_EQ(port_.count("continue"), 1u);
    EXPECT_EQ(counters_.minor_faults.load(), 1u);
}

TEST_F(DispatcherTest, FailedFillDeliversSigbusAndWakes)
{
    Region& r = add_region(kArena, 4);
    port_.fail_zero = { ENOMEM, uffd::FillStatus::Failed, 0 };
    serve({ fault_at(kArena + 2 * kPage, 0, 42) });
    ASSERT_EQ(port_.count("sigbus"), 1u);
    EXPECT_EQ(port_.calls[1].start, kArena + 2 * kPage);
    EXPECT_EQ(port_.calls[1].detail, 42) << "the faulting thread's id goes with it";
    EXPECT_TRUE(port_.woken.count(kArena + 2 * kPage));
    EXPECT_TRUE(r.sigbus_delivered());
    EXPECT_EQ(counters_.sigbus.load(), 1u);
    EXPECT_EQ(r.faults_in_flight(), 0u);
}

TEST_F(DispatcherTest, RetryAndRegionGoneWakeWithoutSigbus)
{
    add_region(kArena, 4);
    port_.fail_zero = { EAGAIN, uffd::FillStatus::Retry, 0 };
    serve({ fault_at(kArena) });
    port_.fail_zero = { ENOENT, uffd::FillStatus::RegionGone, 0 };
    serve({ fault_at(kArena + kPage) });
    port_.fail_zero = { ESRCH, uffd::FillStatus::MmGone, 0 };
    serve({ fault_at(kArena + 2 * kPage) });
    EXPECT_EQ(port_.count("sigbus"), 0u);
    EXPECT_TRUE(port_.woken.count(kArena));
    EXPECT_TRUE(port_.woken.count(kArena + kPage));
    EXPECT_TRUE(port_.woken.count(kArena + 2 * kPage)) << "never leave a thread on a misreported ESRCH";
    EXPECT_EQ(pending_.in_use(), 0u);
}

TEST_F(DispatcherTest, PendingFaultStaysPinnedAcrossBatchesAndResumes)
{
    auto object = ScriptedObject::create(8);
    object->answer = Outcome::pending();
    Region& r = add_region(kArena, 8, object);
    serve({ fault_at(kArena + 3 * kPage, UFFD_PAGEFAULT_FLAG_WRITE, 9) });
    EXPECT_EQ(object->handled, 1);
    EXPECT_TRUE(object->last.token.valid());
    EXPECT_EQ(object->last.completions, &completions_);
    EXPECT_EQ(pending_.parked(), 1u);
    EXPECT_EQ(r.faults_in_flight(), 1u) << "a pending fault keeps its region in flight";
    EXPECT_FALSE(port_.woken.count(kArena + 3 * kPage)) << "nothing installed yet: nobody is woken";

    // Another thread faults the same page in a later batch: dropped, the
    // completion's wake will release it too.
    serve({ fault_at(kArena + 3 * kPage, 0, 10) });
    EXPECT_EQ(object->handled, 1);
    EXPECT_EQ(counters_.deduplicated.load(), 1u);

    // The worker posts; a handler drains and resumes.
    completions_.post(object->last.token, 77);
    CompletionQueue::Completion done[4];
    size_t n = completions_.drain(done, 4);
    ASSERT_EQ(n, 1u);
    dispatcher().resume(done, n, port_);
    EXPECT_EQ(object->resumed, 1);
    EXPECT_EQ(object->last_result, 77);
    EXPECT_EQ(object->last.page, kArena + 3 * kPage);
    EXPECT_TRUE(object->last.write);
    EXPECT_TRUE(port_.is_installed(kArena + 3 * kPage));
    EXPECT_TRUE(port_.woken.count(kArena + 3 * kPage));
    EXPECT_EQ(pending_.parked(), 0u);
    EXPECT_EQ(pending_.in_use(), 0u);
    EXPECT_EQ(r.faults_in_flight(), 0u);
    EXPECT_EQ(counters_.completions.load(), 1u);

    // The same completion again finds nothing parked: ignored.
    dispatcher().resume(done, n, port_);
    EXPECT_EQ(object->resumed, 1);
    EXPECT_EQ(counters_.stale_completions.load(), 1u);
}

TEST_F(DispatcherTest, ResumeCanAnswerPendingAgainOrSigbus)
{
    auto object = ScriptedObject::create(8);
    object->answer = Outcome::pending();
    object->resume_answer = Outcome::pending();
    Region& r = add_region(kArena, 8, object);
    serve({ fault_at(kArena) });
    CompletionQueue::Completion done[1] = { { object->last.token, 0 } };
    dispatcher().resume(done, 1, port_);
    EXPECT_EQ(pending_.parked(), 1u) << "pending again: parked again";
    EXPECT_EQ(r.faults_in_flight(), 1u);
    object->resume_answer = Outcome::sigbus();
    dispatcher().resume(done, 1, port_);
    EXPECT_TRUE(port_.sigbus.count(kArena));
    EXPECT_TRUE(port_.woken.count(kArena));
    EXPECT_EQ(pending_.parked(), 0u);
    EXPECT_EQ(r.faults_in_flight(), 0u);
}

class SmallTableDispatcherTest : public DispatcherTest {
protected:
    SmallTableDispatcherTest() : DispatcherTest(1) {}
};

TEST_F(SmallTableDispatcherTest, FullTableServesWithoutATokenAndNeverWaitsOnNone)
{
    auto object = ScriptedObject::create(8);
    object->answer = Outcome::pending();
    add_region(kArena, 8, object);
    // The first fault takes the only slot and parks; the second finds the
    // table full, so its context has no token, and an object answering
    // pending without one is treated as a retry: the thread is woken.
    serve({ fault_at(kArena), fault_at(kArena + kPage) });
    EXPECT_EQ(counters_.table_full.load(), 1u);
    EXPECT_FALSE(object->last.token.valid());
    EXPECT_TRUE(port_.woken.count(kArena + kPage));
    EXPECT_FALSE(port_.woken.count(kArena));
    EXPECT_EQ(pending_.parked(), 1u);
}

TEST_F(DispatcherTest, WakeBeforeFaultAroundInstallsTheWindowAfterTheWake)
{
    options_.wake_order = WakeOrder::BeforeWindow;
    Region& r = add_region(kArena, 16);
    serve({ fault_at(kArena + 5 * kPage) });
    ASSERT_GE(port_.calls.size(), 3u);
    EXPECT_EQ(port_.calls[0].verb, "zero");
    EXPECT_EQ(port_.calls[0].start, kArena + 5 * kPage);
    EXPECT_EQ(port_.calls[0].len, kPage) << "first the page the thread waits for";
    EXPECT_EQ(port_.calls[1].verb, "wake");
    EXPECT_EQ(port_.calls[1].start, kArena + 5 * kPage);
    EXPECT_EQ(port_.calls[1].len, kPage);
    for (uintptr_t p = kArena + 4 * kPage; p < kArena + 8 * kPage; p += kPage)
        EXPECT_TRUE(port_.is_installed(p));
    EXPECT_EQ(r.faults_in_flight(), 0u);
}

TEST_F(DispatcherTest, AdaptiveOrderWakesIsolatedFaultsBeforeTheirWindow)
{
    options_.wake_order = WakeOrder::Adaptive;
    options_.around = { 4, 64 };
    Region& r = add_region(kArena, 64);
    serve({ fault_at(kArena + 5 * kPage) });
    ASSERT_GE(port_.calls.size(), 3u);
    EXPECT_EQ(port_.calls[0].verb, "zero");
    EXPECT_EQ(port_.calls[0].len, kPage);
    EXPECT_EQ(port_.calls[1].verb, "wake");
    EXPECT_EQ(port_.calls[1].start, kArena + 5 * kPage);
    for (uintptr_t p = kArena + 4 * kPage; p < kArena + 8 * kPage; p += kPage)
        EXPECT_TRUE(port_.is_installed(p));
    EXPECT_EQ(r.faults_in_flight(), 0u);
    // A stream above the window: filled before its wake, which covers it;
    // then the window after it is read ahead and woken in turn.
    port_.calls.clear();
    serve({ fault_at(kArena + 8 * kPage) });
    ASSERT_EQ(port_.calls.size(), 4u);
    EXPECT_EQ(port_.calls[0].verb, "zero");
    EXPECT_EQ(port_.calls[0].start, kArena + 8 * kPage);
    EXPECT_EQ(port_.calls[0].len, 8 * kPage) << "twice the run of 4 below it";
    EXPECT_EQ(port_.calls[1].verb, "wake");
    EXPECT_EQ(port_.calls[1].start, kArena + 8 * kPage);
    EXPECT_EQ(port_.calls[1].len, 8 * kPage);
    EXPECT_EQ(port_.calls[2].verb, "zero");
    EXPECT_EQ(port_.calls[2].start, kArena + 16 * kPage);
    EXPECT_EQ(port_.calls[2].len, 24 * kPage) << "twice the run of 12 below page 16";
    EXPECT_EQ(port_.calls[3].verb, "wake");
    EXPECT_EQ(port_.calls[3].start, kArena + 16 * kPage);
    EXPECT_EQ(port_.calls[3].len, 24 * kPage);
    EXPECT_EQ(r.faults_in_flight(), 0u);
}

TEST_F(DispatcherTest, FaultOnAPageAnotherHandlerIsFillingIsLeftToItsWake)
{
    options_.wake_order = WakeOrder::Adaptive;
    options_.around = { 4, 64 };
    Region& r = add_region(kArena, 64);
    ASSERT_TRUE(const_cast<memory::PageStates&>(r.object().states()).claim(20));
    serve({ fault_at(kArena + 20 * kPage) });
    EXPECT_TRUE(port_.calls.empty()) << "no fill, no wake: the claimer settles the page and wakes it";
    EXPECT_EQ(counters_.deduplicated.load(), 1u);
    EXPECT_EQ(pending_.in_use(), 0u);
    EXPECT_EQ(r.faults_in_flight(), 0u);
}

TEST_F(DispatcherTest, NonFaultEventsAreIgnored)
{
    uffd_msg m {};
    m.event = UFFD_EVENT_FORK;
    dispatcher().serve(&m, 1, port_);
    EXPECT_TRUE(port_.calls.empty());
    EXPECT_EQ(counters_.fault_events.load(), 0u);
}

} // namespace
} // namespace faultline::testing
