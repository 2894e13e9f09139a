// The fault path allocates nothing: malloc and friends are interposed for
// this test binary and count calls made on the runtime's handler threads
// while faults are served (including fault-around, deduplication, stale
// faults after unmap, and the SIGBUS path). Not built with sanitizers, which
// interpose malloc themselves.
#include "support/threads.h"
#include "test_support.h"

#include "os/fault_injection.h"

#include <atomic>
#include <csetjmp>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <string>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void* __libc_memalign(size_t, size_t);

namespace {

constexpr int kMaxWatched = 16;
std::atomic<int> g_watched[kMaxWatched];
std::atomic<bool> g_watching { false };
std::atomic<long> g_allocations { 0 };

bool on_watched_thread()
{
    if (!g_watching.load(std::memory_order_relaxed))
        return false;
    int tid = int(syscall(SYS_gettid));
    for (auto& w : g_watched)
        if (w.load(std::memory_order_relaxed) == tid)
            return true;
    return false;
}

void count()
{
    if (on_watched_thread())
        g_allocations.fetch_add(1);
}

} // namespace

extern "C" void* malloc(size_t n)
{
    count();
    return __libc_malloc(n);
}
extern "C" void* calloc(size_t a, size_t b)
{
    count();
    return __libc_calloc(a, b);
}
extern "C" void* realloc(void* p, size_t n)
{
    count();
    return __libc_realloc(p, n);
}
extern "C" void* aligned_alloc(size_t a, size_t n)
{
    count();
    return __libc_memalign(a, n);
}
extern "C" int posix_memalign(void** out, size_t a, size_t n)
{
    count();
    *out = __libc_memalign(a, n);
    return *out ? 0 : ENOMEM;
}

using namespace faultline;
using faultline::testing::kPage;

namespace {

std::vector<int> handler_tids()
{
    std::vector<int> tids;
    for (const auto& [tid, name] : faultline::testing::process_threads())
        if (name == "faultline-uffd")
            tids.push_back(tid);
    return tids;
}

thread_local sigjmp_buf* t_jump;
void on_signal(int)
{
    if (t_jump)
        siglongjmp(*t_jump, 1);
}

} // namespace

TEST(NoAllocation, FaultPathAllocatesNothing)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .handler_threads = 2, .fault_around_pages = 8, .fault_around_max_pages = 8 });
    auto tids = handler_tids();
    ASSERT_EQ(tids.size(), 2u) << "expected two handler threads named faultline-uffd";
    for (size_t i = 0; i < tids.size(); ++i)
        g_watched[i].store(tids[i]);

    const size_t pages = 4096;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<char*>(*r);
    auto victim = rt->map_anonymous({ .size = 256 * kPage });
    ASSERT_TRUE(victim);

    g_allocations.store(0);
    g_watching.store(true);
    // Reads, writes, several threads on the same pages (deduplication).
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (size_t i = 0; i < pages; i += 3)
                if ((i + t) % 2)
                    p[i * kPage + t] = 1;
                else
                    (void)static_cast<volatile char*>(p)[i * kPage];
        });
    }
    for (auto& t : threads)
        t.join();
    // The SIGBUS path: an injected ENOMEM poisons the page.
    struct sigaction sa {}, old {};
    sa.sa_handler = on_signal;
    sigaction(SIGBUS, &sa, &old);
    // Aimed at the victim: a handler may still be finishing a duplicate
    // message for a page of the other region (its thread already woken by
    // the batch that installed the page's window).
    os::FaultInjection::arm(os::InjectOp::Copy, ENOMEM, 1, uintptr_t(*victim), uintptr_t(*victim) + 256 * kPage);
    sigjmp_buf jump;
    t_jump = &jump;
    volatile bool got_sigbus = false; // set after siglongjmp
    if (sigsetjmp(jump, 1) == 0)
        static_cast<char*>(*victim)[0] = 1;
    else
        got_sigbus = true;
    t_jump = nullptr;
    sigaction(SIGBUS, &old, nullptr);
    os::FaultInjection::disarm_all();
    g_watching.store(false);

    EXPECT_TRUE(got_sigbus);
    EXPECT_GT(rt->stats().fault_events, 100u);
    EXPECT_EQ(g_allocations.load(), 0) << "handler threads allocated while serving faults";
}

// The file path under a memory budget: reads queued on io_uring and resumed
// by completions, minor faults, write-protect faults, readahead, faults
// parked for room and released by the evictor, pins against eviction — all
// on handler threads, none of which may allocate (the evictor may: it is a
// worker).
TEST(NoAllocation, FilePathUnderABudgetAllocatesNothing)
{
    Config c { .handler_threads = 2 };
    c.memory_budget = 64 * kPage;
    c.eviction_batch_pages = 16;
    FAULTLINE_RUNTIME_OR_SKIP(rt, c);
    if (!rt->has_feature("minor") || !rt->has_feature("wp_shmem"))
        GTEST_SKIP() << "writable file regions under a budget need minor and write-protect faults on shared memory";
    const size_t pages = 1024;
    char path[] = "/tmp/faultline-noalloc-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    unlink(path);
    ASSERT_EQ(ftruncate(fd, off_t(pages * kPage)), 0);
    auto r = rt->map_file(fd, { .length = pages * kPage, .access = Access::ReadWrite });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<char*>(*r);
    auto tids = handler_tids();
    ASSERT_EQ(tids.size(), 2u) << "expected two handler threads named faultline-uffd";
    for (size_t i = 0; i < tids.size(); ++i)
        g_watched[i].store(tids[i]);

    g_allocations.store(0);
    g_watching.store(true);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            unsigned x = 12345u + unsigned(t);
            for (int i = 0; i < 3000; ++i) {
                x = x * 1103515245u + 12345u;
                const size_t page = (x >> 8) % pages;
                if (i % 3 == 0)
                    p[page * kPage + t] = char(i);
                else
                    (void)static_cast<volatile char*>(p)[page * kPage];
            }
            // A stream too: readahead windows.
            for (size_t page = 0; page < pages; page += 1)
                (void)static_cast<volatile char*>(p)[page * kPage + 64];
        });
    for (auto& t : threads)
        t.join();
    g_watching.store(false);
    const RuntimeStats st = rt->stats();
    close(fd);

    EXPECT_GT(st.evictions_clean + st.evictions_dirty, 0u) << "the budget must have evicted";
    EXPECT_GT(st.faults_pending, 0u) << "reads must have been pending";
    EXPECT_EQ(g_allocations.load(), 0) << "handler threads allocated while serving file faults under a budget";
}

// The swap pager: zero-fills charged to the budget, faults parked for room,
// swap-ins (pending reads of the swap file and their completions, joined by
// concurrent faults), write-protect faults on pages being evicted and on
// clean swapped-in pages — on handler threads, none of which may allocate
// (the evictor may).
TEST(NoAllocation, SwapPathAllocatesNothing)
{
    Config c { .handler_threads = 2 };
    c.memory_budget = 64 * kPage;
    c.eviction_batch_pages = 16;
    FAULTLINE_RUNTIME_OR_SKIP(rt, c);
    if (!rt->stats().swap_enabled)
        GTEST_SKIP() << "no swap pager here (it needs write-protect faults on anonymous memory)";
    const size_t pages = 1024;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<char*>(*r);
    auto tids = handler_tids();
    ASSERT_EQ(tids.size(), 2u) << "expected two handler threads named faultline-uffd";
    for (size_t i = 0; i < tids.size(); ++i)
        g_watched[i].store(tids[i]);

    g_allocations.store(0);
    g_watching.store(true);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            unsigned x = 777u + unsigned(t);
            for (size_t page = size_t(t); page < pages; page += 4)
                p[page * kPage] = char(page);
            for (int i = 0; i < 3000; ++i) {
                x = x * 1103515245u + 12345u;
                const size_t page = (x >> 8) % pages;
                if (i % 3 == 0)
                    p[page * kPage + 1 + t] = char(i);
                else
                    (void)static_cast<volatile char*>(p)[page * kPage];
            }
        });
    for (auto& t : threads)
        t.join();
    g_watching.store(false);
    const RuntimeStats st = rt->stats();
    EXPECT_GT(st.swapped_out, 0u) << "the budget must have swapped";
    EXPECT_GT(st.swapped_in, 0u) << "pages must have been read back";
    for (size_t page = 0; page < pages; ++page)
        ASSERT_EQ(p[page * kPage], char(page)) << "page " << page;
    EXPECT_EQ(g_allocations.load(), 0) << "handler threads allocated while serving swap faults";
}

// Purgeable memory: faults on pages being purged (answered in flight and
// woken by the purger), refaults of purged pages in Zero mode, and SIGBUS for
// purged pages in Sigbus mode (with its count for set_nonvolatile) — on
// handler threads, none of which may allocate (the purge worker may: it is a
// worker).
TEST(NoAllocation, PurgeablePathAllocatesNothing)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .handler_threads = 2, .fault_around_pages = 8, .fault_around_max_pages = 8 });
    const size_t pages = 512;
    auto* zero = static_cast<char*>(rt->allocate_purgeable(pages * kPage).value());
    auto* sigbus = static_cast<char*>(rt->allocate_purgeable(4 * kPage, { .purged_access = PurgedAccess::Sigbus }).value());
    auto tids = handler_tids();
    ASSERT_EQ(tids.size(), 2u) << "expected two handler threads named faultline-uffd";
    for (size_t i = 0; i < tids.size(); ++i)
        g_watched[i].store(tids[i]);
    // Everything the API threads allocate for the first purge (the worker,
    // its queues) is allocated before watching starts.
    std::memset(sigbus, 1, 4 * kPage);
    ASSERT_TRUE(rt->set_volatile(sigbus, 4 * kPage));
    ASSERT_TRUE(rt->purge(kPurgeAll));

    g_allocations.store(0);
    g_watching.store(true);
    std::atomic<bool> stop { false };
    std::thread purger([&] {
        while (!stop.load()) {
            (void)rt->purge(kPurgeAll);
            std::this_thread::yield();
        }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&, t] {
            for (int round = 0; round < 20; ++round) {
                for (size_t i = 0; i < pages; ++i)
                    zero[i * kPage + t] = char(round + 1);
                (void)rt->set_volatile(zero, pages * kPage);
                if (round % 2 == t)
                    (void)rt->purge(kPurgeAll);
                for (size_t i = 0; i < pages; i += 2)
                    (void)static_cast<volatile char*>(zero)[i * kPage];
                (void)rt->set_nonvolatile(zero, pages * kPage);
            }
        });
    for (auto& t : threads)
        t.join();
    stop.store(true);
    purger.join();
    // The SIGBUS answer for a purged page.
    struct sigaction sa {}, old {};
    sa.sa_handler = on_signal;
    sigaction(SIGBUS, &sa, &old);
    sigjmp_buf jump;
    t_jump = &jump;
    volatile bool got_sigbus = false; // set after siglongjmp
    if (sigsetjmp(jump, 1) == 0)
        (void)static_cast<volatile char*>(sigbus)[kPage];
    else
        got_sigbus = true;
    t_jump = nullptr;
    sigaction(SIGBUS, &old, nullptr);
    g_watching.store(false);

    EXPECT_TRUE(got_sigbus);
    EXPECT_GT(rt->purge_stats().purges, 1u);
    EXPECT_GT(rt->purge_stats().purged_refaults, 0u);
    EXPECT_EQ(g_allocations.load(), 0) << "handler threads allocated while serving purgeable faults";
    EXPECT_TRUE(rt->set_nonvolatile(sigbus, 4 * kPage));
}
