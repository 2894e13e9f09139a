// Purgeable memory: who purges in what order, callbacks, purged-access
// options, and volatility toggled by many threads while a purger runs
// (docs/purgeable.md).
#include "support/core_fixture.h"
#include "support/guarded_access.h"
#include "test_support.h"

#include <faultline/runtime.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <mutex>
#include <pthread.h>
#include <random>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

using namespace faultline;
using namespace faultline::testing;

namespace {

std::string thread_name()
{
    char name[32] = {};
    pthread_getname_np(pthread_self(), name, sizeof name);
    return name;
}

// Waits for `done` (work on another thread), failing after a generous bound
// rather than asserting any timing.
template <typename Fn>
bool eventually(Fn&& done)
{
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

// Four 2-page regions made volatile in the order a, b, c, d with the given
// classes; returns the order in which a full purge visits them.
std::vector<int> purge_order(Runtime& rt, PurgePriority pa, PurgePriority pb, PurgePriority pc, PurgePriority pd)
{
    char* r[4];
    for (auto& p : r) {
        p = static_cast<char*>(rt.allocate_purgeable(2 * kPage).value());
        std::memset(p, 1, 2 * kPage);
    }
    const PurgePriority prio[4] = { pa, pb, pc, pd };
    for (int i = 0; i < 4; ++i)
        EXPECT_TRUE(rt.set_volatile(r[i], 2 * kPage, { .priority = prio[i] }));
    std::vector<int> order;
    EXPECT_TRUE(rt.set_purge_callbacks({ .after_purge = [&](const PurgeEvent& e) {
        for (int i = 0; i < 4; ++i)
            if (e.address == r[i])
                order.push_back(i);
    } }));
    EXPECT_TRUE(rt.purge(kPurgeAll));
    EXPECT_TRUE(rt.set_purge_callbacks({}));
    return order;
}

} // namespace

TEST(PurgeOrder, ObsoleteFirstThenLeastRecentlyMadeVolatile)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    EXPECT_EQ(purge_order(*rt, PurgePriority::Normal, PurgePriority::Normal, PurgePriority::Obsolete, PurgePriority::High),
        (std::vector<int> { 2, 0, 1, 3 }));
}

TEST(PurgeOrder, LifoPurgesTheMostRecentFirst)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .purge = { .order = PurgeOrder::Lifo } });
    EXPECT_EQ(purge_order(*rt, PurgePriority::Normal, PurgePriority::Normal, PurgePriority::Obsolete, PurgePriority::High),
        (std::vector<int> { 2, 1, 0, 3 }));
    EXPECT_EQ(purge_order(*rt, PurgePriority::Low, PurgePriority::High, PurgePriority::Low, PurgePriority::Normal),
        (std::vector<int> { 2, 0, 3, 1 }));
}

// Making a span volatile again renews its place; a partial purge stops at
// the first span that meets the request.
TEST(PurgeOrder, RenewedSpanGoesLastAndPartialPurgeStops)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* a = static_cast<char*>(rt->allocate_purgeable(4 * kPage).value());
    char* b = static_cast<char*>(rt->allocate_purgeable(4 * kPage).value());
    std::memset(a, 1, 4 * kPage);
    std::memset(b, 2, 4 * kPage);
    ASSERT_TRUE(rt->set_volatile(a, 4 * kPage));
    ASSERT_TRUE(rt->set_volatile(b, 4 * kPage));
    ASSERT_TRUE(rt->set_volatile(a, 4 * kPage)); // a is now the most recent
    ASSERT_EQ(rt->purge(kPage).value().purged_bytes, 4 * kPage);
    EXPECT_FALSE(rt->set_nonvolatile(a, 4 * kPage).value().purged);
    EXPECT_TRUE(rt->set_nonvolatile(b, 4 * kPage).value().purged);
}

// The budget: volatile resident bytes above it are purged, and the budget
// holds when set_volatile returns. Non-volatile memory stays.
TEST(PurgeTriggers, BudgetPurgesWhatIsAbove)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .purge = { .budget = 8 * kPage } });
    char* a = static_cast<char*>(rt->allocate_purgeable(8 * kPage).value());
    char* b = static_cast<char*>(rt->allocate_purgeable(8 * kPage).value());
    char* keep = static_cast<char*>(rt->allocate_purgeable(32 * kPage).value());
    std::memset(a, 1, 8 * kPage);
    std::memset(b, 2, 8 * kPage);
    std::memset(keep, 3, 32 * kPage);
    ASSERT_TRUE(rt->set_volatile(a, 8 * kPage));
    EXPECT_EQ(rt->purge_stats().budget_purges, 0u); // exactly at the budget
    ASSERT_TRUE(rt->set_volatile(b, 8 * kPage));
    // 16 pages volatile, budget 8: the older span (a) went.
    EXPECT_GE(rt->purge_stats().budget_purges, 1u);
    EXPECT_LE(rt->purge_stats().volatile_resident, 8 * kPage);
    EXPECT_TRUE(rt->set_nonvolatile(a, 8 * kPage).value().purged);
    EXPECT_FALSE(rt->set_nonvolatile(b, 8 * kPage).value().purged);
    for (size_t i = 0; i < 32 * kPage; ++i)
        ASSERT_EQ(keep[i], 3);
}

// An injected pressure event purges like a PSI event would.
TEST(PurgeTriggers, InjectedPressurePurges)
{
    FAULTLINE_CORE_OR_SKIP(core, Config {});
    char* p = static_cast<char*>(core->allocate_purgeable(16 * kPage, {}).value());
    char* keep = static_cast<char*>(core->allocate_purgeable(16 * kPage, {}).value());
    std::memset(p, 1, 16 * kPage);
    std::memset(keep, 2, 16 * kPage);
    ASSERT_TRUE(core->set_volatile(uintptr_t(p), 16 * kPage, {}));
    ASSERT_NE(core->purgeable().worker(), nullptr);
    core->purgeable().worker()->inject_pressure();
    ASSERT_TRUE(eventually([&] { return core->purge_stats().pressure_events >= 1 && core->purge_stats().volatile_resident == 0; }));
    auto r = core->set_nonvolatile(uintptr_t(p), 16 * kPage).value();
    ASSERT_EQ(r.purged_ranges.size(), 1u);
    EXPECT_EQ(r.purged_ranges[0], (PageRange { p, 16 * kPage }));
    for (size_t i = 0; i < 16 * kPage; ++i)
        ASSERT_EQ(keep[i], 2);
}

// A real PSI trigger: where the kernel lets this process open one, a real
// memory stall purges. The stall is made in a memory cgroup (v1) of its own
// with a 16 MiB limit, where a child keeps allocating past the limit (the
// reclaim before each OOM kill of that child counts as stall); without such
// a cgroup, or when no stall reaches the trigger, the test skips with why.
TEST(PurgeTriggers, RealPsiTriggerPurges)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .purge = { .pressure_trigger = "some 100 2000000" } });
    if (!rt->has_feature("psi"))
        GTEST_SKIP() << "the kernel refused a PSI trigger on its memory.pressure file (no psi feature)";
    char* p = static_cast<char*>(rt->allocate_purgeable(16 * kPage).value());
    std::memset(p, 1, 16 * kPage);
    ASSERT_TRUE(rt->set_volatile(p, 16 * kPage));
    ASSERT_TRUE(rt->purge_stats().pressure_trigger_open);
    const std::string cgroup = "/sys/fs/cgroup/memory/faultline-psi-test-" + std::to_string(getpid());
    if (mkdir(cgroup.c_str(), 0755) != 0)
        GTEST_SKIP() << "no memory cgroup to make a stall in (" << cgroup << ": " << strerror(errno) << ")";
    // The fork child of this multi-threaded process uses system calls only.
    auto write_file = [](const char* path, const char* value) {
        int fd = open(path, O_WRONLY);
        if (fd < 0)
            return false;
        bool ok = write(fd, value, strlen(value)) == ssize_t(strlen(value));
        return close(fd) == 0 && ok;
    };
    const std::string limit_file = cgroup + "/memory.limit_in_bytes", procs_file = cgroup + "/cgroup.procs";
    const bool limited = write_file(limit_file.c_str(), std::to_string(16 << 20).c_str());
    pid_t child = limited ? fork() : -1;
    if (child == 0) {
        if (!write_file(procs_file.c_str(), "0"))
            _exit(2);
        for (int i = 0; i < 200; ++i) {
            pid_t hog = fork();
            if (hog == 0) {
                for (;;) { // past the limit: reclaim, then the OOM killer
                    void* m = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                    if (m != MAP_FAILED)
                        std::memset(m, 1, 1 << 20);
                }
            }
            int status;
            waitpid(hog, &status, 0);
        }
        _exit(0);
    }
    const bool purged = limited && child > 0 && eventually([&] { return rt->purge_stats().pressure_events >= 1; });
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, nullptr, 0);
    }
    // The hogs die with their parent's cgroup emptied by the OOM killer.
    for (int i = 0; i < 100 && rmdir(cgroup.c_str()) != 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!limited)
        GTEST_SKIP() << "cannot limit the memory cgroup " << cgroup;
    if (!purged)
        GTEST_SKIP() << "no memory stall reached the PSI trigger within the deadline";
    ASSERT_TRUE(eventually([&] { return rt->purge_stats().volatile_resident == 0; }));
    auto r = rt->set_nonvolatile(p, 16 * kPage).value();
    ASSERT_EQ(r.purged_ranges.size(), 1u);
    EXPECT_EQ(r.purged_ranges[0], (PageRange { p, 16 * kPage }));
}

// FAULTLINE_DISABLE=psi (the fallback): no trigger is opened, and the other
// purges work as before.
TEST(PurgeTriggers, WithoutPsiTheOtherTriggersRemain)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = "psi", .purge = { .budget = 4 * kPage } });
    EXPECT_FALSE(rt->has_feature("psi"));
    char* p = static_cast<char*>(rt->allocate_purgeable(8 * kPage).value());
    std::memset(p, 1, 8 * kPage);
    EXPECT_FALSE(rt->purge_stats().pressure_trigger_open);
    ASSERT_TRUE(rt->set_volatile(p, 8 * kPage));
    // The budget purged the span. A fault-around fill the memset started
    // may still land on a page right after its purge (it reads zeros and is
    // counted resident again): the periodic budget check takes it back.
    size_t resident = rt->purge_stats().volatile_resident;
    for (int i = 0; i < 100 && resident != 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        resident = rt->purge_stats().volatile_resident;
    }
    EXPECT_EQ(resident, 0u);
    EXPECT_TRUE(rt->set_nonvolatile(p, 8 * kPage).value().purged);
}

// PurgedAccess::Sigbus: a purged page touched while volatile raises SIGBUS
// (the process dies of it when nothing catches it).
TEST(PurgedAccessDeathTest, SigbusKillsTheToucher)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = static_cast<char*>(rt->allocate_purgeable(4 * kPage, { .purged_access = PurgedAccess::Sigbus }).value());
    std::memset(p, 1, 4 * kPage);
    ASSERT_TRUE(rt->set_volatile(p, 4 * kPage));
    ASSERT_TRUE(rt->purge(kPurgeAll));
    EXPECT_EXIT({ volatile char c = p[kPage]; (void)c; }, ::testing::KilledBySignal(SIGBUS), "");
}

// ... and it is exact: a page never populated reads zeros, a non-volatile
// page is unaffected, and once made non-volatile the page reads zeros.
TEST(PurgedAccess, SigbusOnlyOnPurgedPagesUntilNonVolatile)
{
    // No fault-around: pages 4-7 must stay unpopulated.
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1, .fault_around_max_pages = 1 });
    char* p = static_cast<char*>(rt->allocate_purgeable(8 * kPage, { .purged_access = PurgedAccess::Sigbus }).value());
    std::memset(p, 1, 4 * kPage); // 0-3 populated, 4-7 never
    ASSERT_TRUE(rt->set_volatile(p, 8 * kPage));
    ASSERT_TRUE(rt->purge(kPurgeAll));
    EXPECT_EQ(guarded_access([&] { volatile char c = p[kPage]; (void)c; }), SIGBUS);
    EXPECT_EQ(guarded_access([&] { p[2 * kPage] = 1; }), SIGBUS);
    EXPECT_EQ(guarded_access([&] { volatile char c = p[kPage]; (void)c; }), SIGBUS); // still
    EXPECT_EQ(guarded_access([&] { EXPECT_EQ(p[5 * kPage], 0); }), 0);
    auto r = rt->set_nonvolatile(p, 8 * kPage).value();
    ASSERT_EQ(r.purged_ranges.size(), 1u);
    EXPECT_EQ(r.purged_ranges[0], (PageRange { p, 4 * kPage }));
    EXPECT_EQ(guarded_access([&] {
        for (size_t i = 0; i < 8 * kPage; ++i)
            ASSERT_EQ(p[i], 0);
        p[kPage] = 5;
    }),
        0);
    EXPECT_EQ(p[kPage], 5);
}

// A thread touching purged pages (SIGBUS each time) while another makes them
// non-volatile: once set_nonvolatile has returned and the toucher stopped,
// every page is usable again. A SIGBUS marker placed by a fault that began
// before the pages turned non-volatile and landed after their markers were
// cleared would otherwise stay, and the non-volatile page would raise SIGBUS
// on every touch.
TEST(PurgedAccess, SigbusRacingNonVolatileLeavesNoMarkerBehind)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1, .fault_around_max_pages = 1 });
    constexpr size_t kPages = 4, kRounds = 200;
    char* p = static_cast<char*>(rt->allocate_purgeable(kPages * kPage, { .purged_access = PurgedAccess::Sigbus }).value());
    size_t stale = 0, sigbuses = 0;
    for (size_t round = 0; round < kRounds && !stale; ++round) {
        std::memset(p, 1, kPages * kPage);
        ASSERT_TRUE(rt->set_volatile(p, kPages * kPage));
        ASSERT_TRUE(rt->purge(kPurgeAll));
        std::atomic<bool> stop { false };
        std::atomic<size_t> seen { 0 };
        std::thread toucher([&] {
            for (size_t i = 0; !stop.load(); i = (i + 1) % kPages)
                if (guarded_access([&] { volatile char c = p[i * kPage]; (void)c; }) == SIGBUS)
                    seen.fetch_add(1);
        });
        while (seen.load() == 0 && round % 2 == 0)
            std::this_thread::yield();
        ASSERT_TRUE(rt->set_nonvolatile(p, kPages * kPage));
        stop.store(true);
        toucher.join();
        sigbuses += seen.load();
        for (size_t i = 0; i < kPages; ++i)
            if (guarded_access([&] { p[i * kPage] = 2; }) != 0)
                ++stale;
    }
    EXPECT_EQ(stale, 0u) << "a non-volatile page still raises SIGBUS";
    EXPECT_GT(sigbuses, 0u);
}

// PurgedAccess::Callback: the callback runs on the purge worker, never on a
// handler thread, and decides zeros or SIGBUS.
TEST(PurgedAccess, CallbackDecidesOnTheWorkerThread)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    std::mutex m;
    std::vector<std::string> threads;
    std::vector<void*> pages;
    char* p = nullptr;
    auto cb = [&](void* page) {
        std::lock_guard g(m);
        threads.push_back(thread_name());
        pages.push_back(page);
        return page == p; // page 0 may read zeros, the others SIGBUS
    };
    p = static_cast<char*>(rt->allocate_purgeable(4 * kPage, { .purged_access = PurgedAccess::Callback, .on_purged_access = cb }).value());
    std::memset(p, 1, 4 * kPage);
    ASSERT_TRUE(rt->set_volatile(p, 4 * kPage));
    ASSERT_TRUE(rt->purge(kPurgeAll));
    EXPECT_EQ(guarded_access([&] { EXPECT_EQ(p[10], 0); }), 0);
    EXPECT_EQ(guarded_access([&] { volatile char c = p[2 * kPage]; (void)c; }), SIGBUS);
    std::lock_guard g(m);
    ASSERT_EQ(pages.size(), 2u);
    EXPECT_EQ(pages[0], p);
    EXPECT_EQ(pages[1], p + 2 * kPage);
    for (auto& name : threads) {
        EXPECT_EQ(name, "faultline-touch"); // the purge worker's touch thread
        EXPECT_NE(name, "faultline-uffd");
    }
}

// A purge callback that calls the runtime, while an unmap holds the
// runtime's lock waiting for a touch of a purged page parked on its
// callback: the touch is answered by a thread of its own, so the unmap ends,
// and then the purge callback gets the lock. (Answered by the purge thread,
// the touch would wait behind the purge callback, which waits for the unmap.)
TEST(PurgedAccess, UnmapWaitingForAParkedTouchDoesNotDeadlockWithPurgeCallbacks)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = static_cast<char*>(rt->allocate_purgeable(kPage, { .purged_access = PurgedAccess::Callback,
        .on_purged_access = [](void*) { return true; } }).value());
    char* other = static_cast<char*>(rt->allocate_purgeable(kPage).value());
    p[0] = 1;
    other[0] = 2;
    ASSERT_TRUE(rt->set_volatile(p, kPage));
    ASSERT_TRUE(rt->purge(kPurgeAll));
    std::atomic<bool> in_before { false }, go { false }, called { false };
    ASSERT_TRUE(rt->set_purge_callbacks({ .before_purge = [&](const PurgeEvent&) {
        in_before = true;
        while (!go.load())
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        (void)rt->region_stats(other); // takes the runtime's lock
        called = true;
        return true;
    } }));
    ASSERT_TRUE(rt->set_volatile(other, kPage));
    std::thread purger([&] { (void)rt->purge(kPurgeAll); });
    ASSERT_TRUE(eventually([&] { return in_before.load(); })); // the purge thread is in the callback
    // The touch reads zeros, or meets the unmapped range if the unmap wins.
    std::thread toucher([&] {
        const int sig = guarded_access([&] { volatile char c = p[0]; (void)c; });
        EXPECT_TRUE(sig == 0 || sig == SIGSEGV) << sig;
    });
    std::thread unmapper([&] { EXPECT_TRUE(rt->unmap(p, kPage)); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // ordering only: any order must complete
    go = true;
    toucher.join();
    unmapper.join();
    purger.join();
    EXPECT_TRUE(called.load());
}

TEST(PurgedAccess, ThrowingCallbackMeansSigbus)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* p = static_cast<char*>(rt->allocate_purgeable(kPage, { .purged_access = PurgedAccess::Callback,
        .on_purged_access = [](void*) -> bool { throw std::runtime_error("no"); } }).value());
    p[0] = 1;
    ASSERT_TRUE(rt->set_volatile(p, kPage));
    ASSERT_TRUE(rt->purge(kPurgeAll));
    EXPECT_EQ(guarded_access([&] { volatile char c = p[0]; (void)c; }), SIGBUS);
}

// before_purge may veto (and spill); both callbacks run on the purge worker
// and may call the runtime; purge() from a callback is EDEADLK.
TEST(PurgeCallbacks, VetoAndReentry)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    char* a = static_cast<char*>(rt->allocate_purgeable(4 * kPage).value());
    char* b = static_cast<char*>(rt->allocate_purgeable(4 * kPage).value());
    std::memset(a, 1, 4 * kPage);
    std::memset(b, 2, 4 * kPage);
    ASSERT_TRUE(rt->set_volatile(a, 4 * kPage));
    ASSERT_TRUE(rt->set_volatile(b, 4 * kPage));
    std::vector<std::string> threads;
    int reentry = 0, nested_purge = 0;
    ASSERT_TRUE(rt->set_purge_callbacks({
        .before_purge = [&](const PurgeEvent& e) {
            threads.push_back(thread_name());
            if (e.address != a)
                return true;
            // Spill: take a back (a runtime call from the callback), keep it.
            auto r = rt->set_nonvolatile(a, 4 * kPage);
            reentry += r && !r->purged;
            return false;
        },
        .after_purge = [&](const PurgeEvent& e) {
            threads.push_back(thread_name());
            auto nested = rt->purge(kPurgeAll);
            nested_purge = nested ? 0 : nested.error().code();
            EXPECT_EQ(e.address, b);
            EXPECT_EQ(e.purged_bytes, 4 * kPage);
        },
    }));
    auto r = rt->purge(kPurgeAll);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->purged_bytes, 4 * kPage);
    EXPECT_EQ(r->vetoed_bytes, 4 * kPage);
    EXPECT_EQ(reentry, 1);
    EXPECT_EQ(nested_purge, EDEADLK);
    EXPECT_EQ(rt->purge_stats().vetoes, 1u);
    for (auto& name : threads)
        EXPECT_EQ(name, "faultline-purge");
    for (size_t i = 0; i < 4 * kPage; ++i)
        ASSERT_EQ(a[i], 1);
    EXPECT_TRUE(rt->set_nonvolatile(b, 4 * kPage).value().purged);
}

// Eight threads toggle volatility of their slices and check them with
// patterns while another thread purges everything in a loop: a page that is
// not reported purged never loses a byte.
TEST(PurgeConcurrency, TogglingThreadsNeverLoseUnreportedBytes)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kThreads = 8, kPages = 64, kRounds = 400;
    char* base = static_cast<char*>(rt->allocate_purgeable(kThreads * kPages * kPage).value());
    std::atomic<bool> stop { false };
    std::atomic<uint64_t> purges { 0 }, reported { 0 }, failures { 0 };
    std::thread purger([&] {
        while (!stop.load()) {
            if (rt->purge(kPurgeAll))
                purges.fetch_add(1);
            std::this_thread::yield();
        }
    });
    std::vector<std::thread> threads;
    for (size_t t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            std::mt19937 rng { unsigned(t) };
            char* mine = base + t * kPages * kPage;
            for (size_t round = 0; round < kRounds; ++round) {
                const char tag = char(1 + (round + t) % 120);
                for (size_t i = 0; i < kPages; ++i)
                    std::memset(mine + i * kPage, tag, kPage);
                const size_t first = rng() % kPages, count = 1 + rng() % (kPages - first);
                if (!rt->set_volatile(mine + first * kPage, count * kPage)) {
                    failures.fetch_add(1);
                    continue;
                }
                if (rng() % 2) { // touched while volatile: data or zeros, nothing else
                    for (size_t i = first; i < first + count; ++i) {
                        const char c = mine[i * kPage + 7];
                        if (c != tag && c != 0)
                            failures.fetch_add(1);
                    }
                }
                std::this_thread::yield();
                auto r = rt->set_nonvolatile(mine + first * kPage, count * kPage);
                if (!r) {
                    failures.fetch_add(1);
                    continue;
                }
                std::vector<bool> purged(kPages, false);
                for (const PageRange& pr : r->purged_ranges) {
                    reported.fetch_add(1);
                    const size_t lo = (static_cast<char*>(pr.address) - mine) / kPage;
                    for (size_t i = lo; i < lo + pr.size / kPage; ++i) {
                        if (i < first || i >= first + count)
                            failures.fetch_add(1); // reported outside the range
                        else
                            purged[i] = true;
                    }
                }
                for (size_t i = 0; i < kPages; ++i) {
                    if (purged[i])
                        continue;
                    for (size_t b = 0; b < kPage; b += 512)
                        if (mine[i * kPage + b] != tag) {
                            failures.fetch_add(1);
                            break;
                        }
                }
            }
        });
    for (auto& t : threads)
        t.join();
    stop.store(true);
    purger.join();
    EXPECT_EQ(failures.load(), 0u);
    EXPECT_GT(purges.load(), 0u);
    RecordProperty("purges", int(purges.load()));
    RecordProperty("reported_ranges", int(reported.load()));
    EXPECT_EQ(rt->region_stats(base).value().volatile_bytes, 0u);
    EXPECT_EQ(rt->stats().committed, kThreads * kPages * kPage);
    EXPECT_EQ(rt->purge_stats().reclaimable, 0u);
}

// A page discarded while another thread keeps touching it is filled again
// behind the discard; whatever the runtime's per-page record says of it
// afterwards, data written to it later and then purged must be reported (the
// purge once trusted the record, and a touch landing between the discard's
// madvise and its forgetting the pages left data behind an "unpopulated"
// record: the stress tool saw written pages come back as zeros, unreported).
TEST(PurgeConcurrency, PagesRefilledDuringADiscardAreReportedWhenPurged)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kPages = 8, kRounds = 300;
    char* base = static_cast<char*>(rt->allocate_purgeable(kPages * kPage).value());
    std::atomic<bool> stop { false }, pause { false };
    std::atomic<uint64_t> touches { 0 };
    std::atomic<int> parked { 0 };
    std::thread toucher([&] {
        volatile const char* p = base;
        while (!stop.load()) {
            if (pause.load()) {
                parked.store(1);
                while (pause.load() && !stop.load())
                    std::this_thread::yield();
                parked.store(0);
                continue;
            }
            for (size_t i = 0; i < kPages; ++i)
                (void)p[i * kPage];
            touches.fetch_add(1, std::memory_order_relaxed);
        }
    });
    uint64_t lost = 0, reported = 0;
    for (size_t round = 0; round < kRounds; ++round) {
        // The toucher is running through the pages when they are discarded.
        pause.store(false);
        for (const uint64_t seen = touches.load(); touches.load() == seen;)
            std::this_thread::yield();
        ASSERT_TRUE(rt->discard(base, kPages * kPage));
        // Nothing touches the pages while they are written, made volatile
        // and purged: what the purge does not report must hold the pattern.
        pause.store(true);
        while (!parked.load())
            std::this_thread::yield();
        const char tag = char(1 + round % 100);
        std::memset(base, tag, kPages * kPage);
        ASSERT_TRUE(rt->set_volatile(base, kPages * kPage));
        ASSERT_TRUE(rt->purge(kPurgeAll));
        auto r = rt->set_nonvolatile(base, kPages * kPage);
        ASSERT_TRUE(r) << r.error().message();
        std::vector<bool> purged(kPages, false);
        for (const PageRange& pr : r->purged_ranges)
            for (size_t i = 0; i < pr.size / kPage; ++i)
                purged[(static_cast<char*>(pr.address) - base) / kPage + i] = true;
        for (size_t i = 0; i < kPages; ++i) {
            reported += purged[i];
            if (!purged[i] && base[i * kPage] != tag)
                ++lost;
        }
    }
    stop.store(true);
    toucher.join();
    EXPECT_EQ(lost, 0u) << "pages lost their data without being reported purged";
    // Every page held data when purged: each must have been reported.
    EXPECT_EQ(reported, kPages * kRounds);
    EXPECT_GE(touches.load(), kRounds);
}
