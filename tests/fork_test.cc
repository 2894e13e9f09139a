// Fork: a child's copy of a runtime is inert (docs/api.md, "fork").
//
// A child inherits the runtime object, the userfaultfd and the eventfd that
// stops the handler threads, but none of the threads. Nothing the child does
// — exiting, destroying its copy, calling the API — may reach the parent's
// fault service, and the parent's destroy must still wake its own faulting
// threads while a child keeps the inherited userfaultfd open (closing the
// parent's descriptor then wakes nobody). Results from a child come back
// through its exit status and a pipe (fork_support.h); every wait that a
// regression could turn into a hang is bounded by a watchdog.
#include "fork_support.h"
#include "segv_support.h"
#include "test_support.h"

#include "os/fault_injection.h"

#include <faultline/faultline.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

using namespace faultline;
using faultline::os::FaultInjection;
using faultline::os::InjectOp;
using faultline::testing::ForkedChild;
using faultline::testing::kPage;
using faultline::testing::SegvCatcher;
using faultline::testing::Watchdog;

// LeakSanitizer's check at exit (ASan builds) cannot see the parent's
// threads from a fork child: what their stacks reference looks leaked, and
// it warns that it could not suspend them. The one child that ends with
// exit() turns the check off; the parent process is checked as usual.
namespace {
std::atomic<bool> g_no_leak_check_in_child { false };
}
extern "C" int __lsan_is_turned_off() { return g_no_leak_check_in_child.load() ? 1 : 0; }

namespace {

// Writes a distinct byte into each of `count` pages from `first` (touching
// them for the first time if they are fresh), then reads them all back.
// Returns the first page that read wrong, or -1.
long write_and_verify(char* p, size_t first, size_t count, char seed)
{
    for (size_t i = first; i < first + count; ++i)
        p[i * kPage + i % 61] = char(seed + i);
    for (size_t i = first; i < first + count; ++i)
        if (p[i * kPage + i % 61] != char(seed + i))
            return long(i);
    return -1;
}

faultline_runtime_t create_c_runtime()
{
    faultline_config config {};
    config.fault_around_pages = 1;
    faultline_runtime_t handle = 0;
    return faultline_create(&config, &handle) == 0 ? handle : 0;
}

// How the fork child ends, each a way the child's copy of the runtimes gets
// destroyed (or not) in the child.
enum class ChildEnd {
    // exit(0): static destructors run, among them the C API's runtime
    // table, which destroys the child's copy of the C runtime.
    ExitWithCApiRuntime,
    // _exit(0): nothing is destroyed; the descriptors just close.
    UnderscoreExit,
    // The child destroys its copy of the C++ Runtime (unique_ptr reset).
    DestroyCppCopy,
    // The child calls faultline_destroy on its copy of the handle.
    DestroyCApiHandle,
};

std::string end_name(const ::testing::TestParamInfo<ChildEnd>& info)
{
    switch (info.param) {
    case ChildEnd::ExitWithCApiRuntime:
        return "ExitWithCApiRuntime";
    case ChildEnd::UnderscoreExit:
        return "UnderscoreExit";
    case ChildEnd::DestroyCppCopy:
        return "DestroyCppCopy";
    case ChildEnd::DestroyCApiHandle:
        return "DestroyCApiHandle";
    }
    return "Unknown";
}

class ForkChildEnd : public ::testing::TestWithParam<ChildEnd> { };

} // namespace

TEST_P(ForkChildEnd, ParentFaultServiceSurvivesTheChild)
{
    const ChildEnd end = GetParam();
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    const faultline_runtime_t handle = create_c_runtime();
    ASSERT_NE(handle, 0u) << faultline_last_error();
    auto r = rt->map_anonymous({ .size = 64 * kPage, .name = "cpp-region" });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<char*>(*r);
    void* mapped = nullptr;
    ASSERT_EQ(faultline_map(handle, nullptr, 64 * kPage, FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE, 0, "c-region", &mapped), 0)
        << faultline_last_error();
    auto* c = static_cast<char*>(mapped);
    // Served before the fork: the child inherits these pages.
    ASSERT_EQ(write_and_verify(p, 0, 4, 'a'), -1);
    ASSERT_EQ(write_and_verify(c, 0, 4, 'k'), -1);

    {
        ForkedChild child(
            [&](ForkedChild& self) {
                switch (end) {
                case ChildEnd::ExitWithCApiRuntime:
                    g_no_leak_check_in_child.store(true);
                    exit(0);
                case ChildEnd::UnderscoreExit:
                    _exit(0);
                case ChildEnd::DestroyCppCopy:
                    rt.reset();
                    return;
                case ChildEnd::DestroyCApiHandle: {
                    const int rc = faultline_destroy(handle);
                    self.check(rc == 0, "faultline_destroy in the child returned %d: %s", rc, faultline_last_error());
                    return;
                }
                }
            },
            15);
        ASSERT_TRUE(child.started());
        auto out = child.reap(30);
        EXPECT_TRUE(out.exited_zero()) << out.describe();
    }

    // The parent's handler threads must still serve first touches: of fresh
    // pages of the old regions, and of regions mapped after the child ended.
    // Unserved, these touches would wait forever.
    Watchdog dog("the parent's first touches after its fork child ended", 30);
    EXPECT_EQ(write_and_verify(p, 8, 16, 'p'), -1);
    EXPECT_EQ(write_and_verify(c, 8, 16, 'q'), -1);
    auto fresh = rt->map_anonymous({ .size = 16 * kPage, .name = "after-child" });
    ASSERT_TRUE(fresh) << fresh.error().message();
    EXPECT_EQ(write_and_verify(static_cast<char*>(*fresh), 0, 16, 'r'), -1);
    void* fresh_c = nullptr;
    ASSERT_EQ(faultline_map(handle, nullptr, 16 * kPage, FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE, 0, nullptr, &fresh_c), 0)
        << faultline_last_error();
    EXPECT_EQ(write_and_verify(static_cast<char*>(fresh_c), 0, 16, 's'), -1);
    // What was there before the fork is untouched.
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(p[i * kPage + i % 61], char('a' + i));
        EXPECT_EQ(c[i * kPage + i % 61], char('k' + i));
    }
    EXPECT_EQ(faultline_destroy(handle), 0);
}

INSTANTIATE_TEST_SUITE_P(Ends, ForkChildEnd,
    ::testing::Values(ChildEnd::ExitWithCApiRuntime, ChildEnd::UnderscoreExit, ChildEnd::DestroyCppCopy, ChildEnd::DestroyCApiHandle),
    end_name);

namespace {
class ForkDestroy : public ::testing::Test {
protected:
    void TearDown() override { FaultInjection::disarm_all(); }
};
} // namespace

TEST_F(ForkDestroy, WakesFaultingThreadWhileChildHoldsTheUserfaultfd)
{
    SegvCatcher segv;
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    const size_t pages = size_t(1) << 16;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::NoReserve, .name = "churn" });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<char*>(*r);

    // The child keeps its copy of the userfaultfd open until released.
    ForkedChild child([](ForkedChild& self) {
        self.ready();
        self.wait_for_parent();
    },
        60);
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(child.wait_ready()) << child.reap().describe();

    // Every install fails with EAGAIN: the handler retries, then wakes the
    // thread, which faults again at once. The thread spends its time inside
    // a fault, which is where destroy must find and wake it.
    FaultInjection::arm(InjectOp::Copy, EAGAIN, 1 << 30);
    FaultInjection::arm(InjectOp::ZeroPage, EAGAIN, 1 << 30);
    std::atomic<bool> segv_taken { false };
    std::atomic<size_t> served { 0 };
    std::thread faulter([&] {
        for (size_t i = 0; i < pages; ++i) {
            if (!faultline::testing::try_write(p + i * kPage, 'f')) {
                segv_taken.store(true);
                return;
            }
            served.fetch_add(1);
        }
    });
    {
        Watchdog dog("waiting for the faulting thread to cycle through injected failures", 30, child.pid());
        while (FaultInjection::taken(InjectOp::Copy) < 64)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    {
        // Destroy unmaps the arena and wakes the thread; it retries, finds
        // no memory and takes SIGSEGV, as after munmap(2).
        Watchdog dog("destroy with a thread faulting and a fork child alive", 30, child.pid());
        rt.reset();
        faulter.join();
    }
    FaultInjection::disarm_all();
    EXPECT_TRUE(segv_taken.load()) << "the faulting thread ended without SIGSEGV after " << served.load() << " pages";
    EXPECT_EQ(served.load(), 0u) << "no install can succeed while every copy fails";
    EXPECT_TRUE(child.alive()) << "the child must still hold the userfaultfd while the parent destroys";
    child.release();
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();
}

TEST(ForkPolicy, ChildCallsAreEchildAndQueriesWork)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    const faultline_runtime_t handle = create_c_runtime();
    ASSERT_NE(handle, 0u) << faultline_last_error();
    auto r = rt->map_anonymous({ .size = 8 * kPage, .name = "priv" });
    ASSERT_TRUE(r) << r.error().message();
    auto* priv = static_cast<char*>(*r);
    auto s = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Shared, .name = "shared" });
    ASSERT_TRUE(s) << s.error().message();
    auto* shared = static_cast<char*>(*s);
    void* mapped = nullptr;
    ASSERT_EQ(faultline_map(handle, nullptr, 4 * kPage, FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE, 0, "c-region", &mapped), 0);
    auto* c = static_cast<char*>(mapped);
    priv[0] = 'a';
    priv[kPage] = 'b';
    shared[0] = 'S';
    c[0] = 'c';

    ForkedChild child([&](ForkedChild& self) {
        auto echild = [&](const char* call, const auto& result) {
            self.check(!result && result.error().code() == ECHILD, "%s in the child: %s", call,
                result ? "succeeded" : result.error().message());
        };
        echild("map_anonymous", rt->map_anonymous({ .size = kPage }));
        echild("unmap", rt->unmap(priv, kPage));
        echild("protect", rt->protect(priv, kPage, Access::Read));
        echild("set_name", rt->set_name(priv, kPage, "child"));
        echild("make_immutable", rt->make_immutable(priv, kPage));
        echild("discard", rt->discard(shared, kPage));
        echild("region_stats", rt->region_stats(priv));

        auto c_echild = [&](const char* call, int rc) { self.check(rc == -ECHILD, "%s in the child returned %d", call, rc); };
        void* out = nullptr;
        faultline_region_stats st {};
        c_echild("faultline_map", faultline_map(handle, nullptr, kPage, 3, 0, nullptr, &out));
        c_echild("faultline_unmap", faultline_unmap(handle, c, kPage));
        c_echild("faultline_protect", faultline_protect(handle, c, kPage, FAULTLINE_ACCESS_READ));
        c_echild("faultline_set_name", faultline_set_name(handle, c, kPage, "child"));
        c_echild("faultline_make_immutable", faultline_make_immutable(handle, c, kPage));
        c_echild("faultline_get_region_stats", faultline_get_region_stats(handle, c, &st));

        // Queries describe the child's copy.
        auto regions = rt->regions();
        self.check(regions.size() == 2, "regions() in the child: %zu entries", regions.size());
        self.check(regions.size() == 2 && regions[0].name == "priv" && regions[1].name == "shared", "regions() names changed");
        self.check(rt->stats().region_count == 2, "stats().region_count in the child: %zu", rt->stats().region_count);
        const std::string json = rt->to_json();
        self.check(json.find("\"name\":\"priv\"") != std::string::npos && json.find("\"name\":\"shared\"") != std::string::npos,
            "to_json() in the child lacks the regions: %.200s", json.c_str());
        const long need = faultline_to_json(handle, nullptr, 0);
        self.check(need > 0, "faultline_to_json in the child: %ld", need);

        // Memory: the parent's bytes where it installed pages, zeros where
        // it never did (the child's touches are served by the kernel: the
        // inherited mapping is not registered with any userfaultfd here).
        self.check(priv[0] == 'a' && priv[kPage] == 'b', "private pages lost the parent's bytes");
        self.check(priv[5 * kPage] == 0 && priv[7 * kPage + 9] == 0, "untouched private pages are not zero");
        self.check(shared[0] == 'S', "shared page lost the parent's byte");
        self.check(shared[3 * kPage] == 0, "untouched shared page is not zero");
        self.check(c[0] == 'c' && c[2 * kPage] == 0, "C API region: wrong bytes");
        priv[6 * kPage] = 'x'; // the child's own page; the parent must not see it
    });
    ASSERT_TRUE(child.started());
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();

    // Nothing the child attempted reached the parent.
    auto regions = rt->regions();
    ASSERT_EQ(regions.size(), 2u);
    EXPECT_EQ(regions[0].name, "priv");
    EXPECT_EQ(regions[0].access, Access::ReadWrite);
    EXPECT_FALSE(has(regions[0].flags, RegionFlags::Immutable));
    EXPECT_EQ(priv[0], 'a');
    EXPECT_EQ(priv[6 * kPage], 0);
    EXPECT_EQ(shared[0], 'S') << "the child punched the parent's shared memory";
    faultline_region_stats st {};
    ASSERT_EQ(faultline_get_region_stats(handle, c, &st), 0) << faultline_last_error();
    EXPECT_EQ(st.access, unsigned(FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE));
    EXPECT_EQ(c[0], 'c');
    EXPECT_EQ(faultline_destroy(handle), 0);
}

TEST(ForkPolicy, SharedRegionWritesCrossBothWays)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    auto r = rt->map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Shared, .name = "both-ways" });
    ASSERT_TRUE(r) << r.error().message();
    auto* s = static_cast<volatile char*>(*r);
    s[0] = 'P';
    ForkedChild child([&](ForkedChild& self) {
        self.check(s[0] == 'P', "the child does not see the parent's byte");
        self.check(s[4 * kPage] == 0, "an untouched shared page is not zero in the child");
        s[kPage] = 'C';
        self.ready();
        self.wait_for_parent();
        self.check(s[2 * kPage] == 'Q', "the child does not see the parent's write made after the fork");
        self.check(s[3 * kPage] == 0, "an untouched shared page is not zero in the child");
    });
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(child.wait_ready()) << child.reap().describe();
    Watchdog dog("parent touches of a shared region with a fork child alive", 30, child.pid());
    EXPECT_EQ(s[kPage], 'C') << "the parent does not see the child's write";
    s[2 * kPage] = 'Q'; // a page neither side touched before: served by the parent's runtime
    EXPECT_EQ(s[5 * kPage], 0);
    child.release();
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();
}

TEST(ForkPolicy, ParentKeepsWorkingWithChildAlive)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    auto r = rt->map_anonymous({ .size = 32 * kPage, .name = "before-fork" });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<char*>(*r);
    ASSERT_EQ(write_and_verify(p, 0, 2, 'a'), -1);
    ForkedChild child([](ForkedChild& self) {
        self.ready();
        self.wait_for_parent();
    });
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(child.wait_ready()) << child.reap().describe();
    {
        Watchdog dog("the parent's calls with a fork child alive", 30, child.pid());
        EXPECT_EQ(write_and_verify(p, 4, 16, 'b'), -1);
        auto q = rt->map_anonymous({ .size = 16 * kPage, .name = "during-fork" });
        ASSERT_TRUE(q) << q.error().message();
        auto* qp = static_cast<char*>(*q);
        EXPECT_EQ(write_and_verify(qp, 0, 16, 'c'), -1);
        ASSERT_TRUE(rt->protect(qp, 8 * kPage, Access::Read));
        EXPECT_EQ(rt->region_stats(qp)->access, Access::Read);
        ASSERT_TRUE(rt->set_name(qp + 8 * kPage, 8 * kPage, "renamed"));
        ASSERT_TRUE(rt->discard(p + 4 * kPage, kPage));
        EXPECT_EQ(p[4 * kPage + 4], 0);
        ASSERT_TRUE(rt->unmap(qp, 16 * kPage));
        EXPECT_EQ(rt->regions().size(), 1u);
        EXPECT_NE(rt->to_json().find("\"name\":\"before-fork\""), std::string::npos);
    }
    child.release();
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();
}

TEST(ForkPolicy, ChildOutlivesParentDestroy)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    auto r = rt->map_anonymous({ .size = 8 * kPage, .name = "outlived" });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    p[0] = 'a';
    p[2 * kPage] = 'b';
    ForkedChild child([&](ForkedChild& self) {
        self.ready();
        self.wait_for_parent();
        // The parent's runtime is gone; the child's memory is its own.
        self.check(p[0] == 'a' && p[2 * kPage] == 'b', "the child's copy lost the parent's bytes");
        self.check(p[5 * kPage] == 0, "an untouched page is not zero in the child");
        p[6 * kPage] = 'z';
        self.check(p[6 * kPage] == 'z', "the child cannot write its copy");
        self.check(rt->regions().size() == 1, "regions() of the child's copy");
    });
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(child.wait_ready()) << child.reap().describe();
    {
        Watchdog dog("destroy with a fork child alive", 30, child.pid());
        rt.reset();
    }
    EXPECT_TRUE(child.alive());
    child.release();
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();
}

// A prepare handler that runs after the runtime's — the program's own, or an
// allocator purging memory the runtime serves under the preloaded heap — may
// call into the runtime while the forking thread holds its API lock across
// the fork. A discard then must not wait for that lock (it once did: a bash
// under `faultline run` hung in fork). Only a fresh process can register a
// handler before the runtime's: a helper program does.
TEST(ForkPolicy, APrepareHandlerAfterTheRuntimesCanDiscard)
{
    const int status = system(FAULTLINE_FORK_DISCARD_HELPER_PATH);
    ASSERT_TRUE(WIFEXITED(status)) << "the helper did not exit (a signal: SIGALRM after 20 s means the fork hung)";
    if (WEXITSTATUS(status) == 77)
        GTEST_SKIP() << "no userfaultfd for the helper program: it could not create a runtime (its stderr above says why)";
    EXPECT_EQ(WEXITSTATUS(status), 0) << "exit codes: 4 the fork failed, 5 the discard failed, 6 the page kept its byte";
}
