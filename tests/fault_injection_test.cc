// Failing ioctls: each injected error reaches the faulting thread as a
// retry, an installed page or SIGBUS, never a hang, and the runtime goes on
// serving other regions.
#include "test_support.h"

#include "os/fault_injection.h"

#include <csetjmp>
#include <csignal>
#include <cstring>

using namespace faultline;
using faultline::os::FaultInjection;
using faultline::os::InjectOp;
using faultline::testing::kPage;

namespace {

class FaultInjectionPath : public ::testing::Test {
protected:
    void TearDown() override { FaultInjection::disarm_all(); }
};

thread_local sigjmp_buf* t_jump;
void on_sigbus(int)
{
    if (t_jump)
        siglongjmp(*t_jump, 1);
}

// Writes one byte; returns false if the write raised SIGBUS.
bool write_or_sigbus(volatile char* p, char v)
{
    struct sigaction sa {}, old {};
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, &old);
    sigjmp_buf jump;
    t_jump = &jump;
    bool ok = true;
    if (sigsetjmp(jump, 1) == 0)
        *p = v;
    else
        ok = false;
    t_jump = nullptr;
    sigaction(SIGBUS, &old, nullptr);
    return ok;
}

char* map(Runtime& rt, size_t pages)
{
    auto r = rt.map_anonymous({ .size = pages * kPage });
    EXPECT_TRUE(r);
    return static_cast<char*>(*r);
}

} // namespace

TEST_F(FaultInjectionPath, EagainIsRetried)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* p = map(*rt, 4);
    FaultInjection::arm(InjectOp::Copy, EAGAIN, 3);
    p[0] = 'a';
    EXPECT_EQ(p[0], 'a');
    EXPECT_EQ(FaultInjection::taken(InjectOp::Copy), 3);
    EXPECT_GE(rt->stats().eagain_retries, 3u);
}

TEST_F(FaultInjectionPath, PersistentEagainBecomesRefault)
{
    // More EAGAINs than the handler retries in place: the thread is woken,
    // faults again, and is served once the condition clears.
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* p = map(*rt, 4);
    FaultInjection::arm(InjectOp::Copy, EAGAIN, 40);
    p[kPage] = 'b';
    EXPECT_EQ(p[kPage], 'b');
    EXPECT_EQ(FaultInjection::taken(InjectOp::Copy), 40);
    EXPECT_GT(rt->stats().fault_events, 1u);
}

TEST_F(FaultInjectionPath, EnoentMeansRegionGoneAndRefaults)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* p = map(*rt, 4);
    FaultInjection::arm(InjectOp::Copy, ENOENT, 2);
    p[0] = 'c';
    EXPECT_EQ(p[0], 'c');
    EXPECT_EQ(FaultInjection::taken(InjectOp::Copy), 2);
}

TEST_F(FaultInjectionPath, EexistIsSuccessEvenWhenLying)
{
    // EEXIST is success; if the page is in fact missing, the woken thread
    // faults again and gets it.
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* p = map(*rt, 4);
    FaultInjection::arm(InjectOp::Copy, EEXIST, 1);
    p[0] = 'd';
    EXPECT_EQ(p[0], 'd');
    EXPECT_GE(rt->stats().eexist, 1u);
}

TEST_F(FaultInjectionPath, ZeropageFailuresOnReads)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    if (!rt->has_feature("zeropage"))
        GTEST_SKIP() << "UFFDIO_ZEROPAGE not in use";
    char* p = map(*rt, 4);
    FaultInjection::arm(InjectOp::ZeroPage, EAGAIN, 2);
    EXPECT_EQ(static_cast<volatile char*>(p)[0], 0);
    FaultInjection::arm(InjectOp::ZeroPage, ENOENT, 1);
    EXPECT_EQ(static_cast<volatile char*>(p)[kPage], 0);
}

TEST_F(FaultInjectionPath, EnomemIsSigbusAndServiceContinues)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* bad = map(*rt, 4);
    char* good = map(*rt, 4);
    FaultInjection::arm(InjectOp::Copy, ENOMEM, 1);
    EXPECT_FALSE(write_or_sigbus(bad, 'x')) << "ENOMEM must reach the thread as SIGBUS";
    EXPECT_EQ(rt->stats().sigbus_delivered, 1u);
    // The page stays poisoned until dropped...
    EXPECT_FALSE(write_or_sigbus(bad, 'x'));
    // ...while everything else is served as before.
    good[0] = 'g';
    EXPECT_EQ(good[0], 'g');
    bad[kPage] = 'n';
    EXPECT_EQ(bad[kPage], 'n');
    // Unmapping clears the poison: the range is good as new.
    ASSERT_TRUE(rt->unmap(bad, 4 * kPage));
    auto again = rt->map_anonymous({ .size = 4 * kPage, .address = bad });
    ASSERT_TRUE(again);
    bad[0] = 'r';
    EXPECT_EQ(bad[0], 'r');
}

TEST_F(FaultInjectionPath, EnomemKillsWithSigbusByDefault)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* p = map(*rt, 4);
    EXPECT_EXIT(
        {
            FaultInjection::arm(InjectOp::Copy, ENOMEM, 1000);
            p[0] = 1;
        },
        ::testing::KilledBySignal(SIGBUS), "");
}

TEST_F(FaultInjectionPath, SigbusWithoutPoisonUsesFallback)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1, .disable = "poison" });
    ASSERT_FALSE(rt->has_feature("poison"));
    char* p = map(*rt, 4);
    FaultInjection::arm(InjectOp::Copy, ENOMEM, 1);
    EXPECT_FALSE(write_or_sigbus(p, 'x'));
    p[kPage] = 'y';
    EXPECT_EQ(p[kPage], 'y');
    ASSERT_TRUE(rt->unmap(p, 4 * kPage));
    auto again = rt->map_anonymous({ .size = 4 * kPage, .address = p });
    ASSERT_TRUE(again);
    p[0] = 'z';
    EXPECT_EQ(p[0], 'z') << "the SIGBUS fallback mapping must not outlive the region";
}

TEST_F(FaultInjectionPath, PoisonFailureFallsBack)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* p = map(*rt, 4);
    FaultInjection::arm(InjectOp::Poison, EAGAIN, 1);
    FaultInjection::arm(InjectOp::Copy, ENOMEM, 1);
    EXPECT_FALSE(write_or_sigbus(p, 'x'));
}

TEST_F(FaultInjectionPath, WakeFailureWakesPageByPage)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* p = map(*rt, 4);
    FaultInjection::arm(InjectOp::Wake, EINVAL, 1);
    p[0] = 'w';
    EXPECT_EQ(p[0], 'w');
    EXPECT_EQ(FaultInjection::taken(InjectOp::Wake), 1);
}

TEST_F(FaultInjectionPath, EsrchDoesNotStrandTheThread)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* p = map(*rt, 4);
    FaultInjection::arm(InjectOp::Copy, ESRCH, 1);
    p[0] = 's';
    EXPECT_EQ(p[0], 's');
}
