// Durability (issue 14, part 4): what a process writes into shared file and
// store regions is in the file after the process is gone, exactly as
// docs/api.md promises, and nothing lands past the end of the file.
//
// Every test runs the writer in a fork child that makes its own runtime and
// ends in a chosen way (sync + unmap + destroy + exit; unmap or destruction
// alone; exit() of a C program that never destroyed its runtime; SIGKILL),
// and then reads the file back byte by byte in a fresh process: a program
// (tests/durability_reader.cc) started after the writer ended, that never
// used faultline. The promises checked:
//
// - sync, unmap of a region that has been writable, and the runtime's
//   destruction each write the dirty pages back (docs/api.md, map_file);
// - a process killed with SIGKILL keeps everything it synced: a page not
//   written since its last sync holds exactly the synced bytes; a page
//   written since holds, byte for byte, the synced or the later value
//   (msync(2)'s promise; eviction under a budget may have written it);
//   dirty pages the budget evicted were written back first;
// - write-back never writes past the end of the file nor extends it: not the
//   tail of a partial last page, not a file someone else shrank meanwhile,
//   not eviction, not a store (Store::write is never asked past size());
//   and with direct_io (an O_DIRECT descriptor) that partial last page is
//   written back all the same.
#include "fork_support.h"
#include <chrono>
#include <thread>
#include "support/temp_file.h"
#include "test_support.h"

#include <faultline/faultline.h>
#include <faultline/store.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

// The value of byte `offset` of the file in generation `tag` ('A', 'B',
// 'C'): the generations differ in every byte (they differ in the low two
// bits), and from TempFile's random contents almost everywhere.
char pattern(char tag, size_t offset) { return char(((offset * 131) >> 3) ^ (offset >> 11) ^ uint8_t(tag)); }

void fill(char* p, char tag, size_t file_offset, size_t bytes)
{
    for (size_t i = 0; i < bytes; ++i)
        p[i] = pattern(tag, file_offset + i);
}

// --- reading back in a fresh process ---------------------------------------

struct FileImage {
    off_t size = -1;
    std::vector<char> bytes;
    std::string error; // non-empty: the reader failed
};

// The file as a new program sees it (fork + exec of durability-reader).
FileImage read_in_fresh_process(const std::string& path)
{
    FileImage image;
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        image.error = std::string("pipe: ") + strerror(errno);
        return image;
    }
    pid_t pid = fork();
    if (pid < 0) {
        image.error = std::string("fork: ") + strerror(errno);
        close(out[0]);
        close(out[1]);
        return image;
    }
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO); // dup2 clears O_CLOEXEC on the copy
        execl(FAULTLINE_DURABILITY_READER_PATH, "durability-reader", path.c_str(), (char*)nullptr);
        _exit(127);
    }
    close(out[1]);
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = read(out[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        text.append(buf, size_t(n));
    }
    close(out[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        image.error = "durability-reader failed (status " + std::to_string(status) + ")";
        return image;
    }
    const size_t newline = text.find('\n');
    if (newline == std::string::npos) {
        image.error = "durability-reader printed no size";
        return image;
    }
    image.size = off_t(std::stoll(text.substr(0, newline)));
    image.bytes.assign(text.begin() + ptrdiff_t(newline + 1), text.end());
    if (off_t(image.bytes.size()) != image.size)
        image.error = "durability-reader printed " + std::to_string(image.bytes.size()) + " bytes of a file of "
            + std::to_string(image.size);
    return image;
}

// The first byte where `got` differs from `want`, described; empty if none.
std::string first_difference(const std::vector<char>& got, const std::vector<char>& want)
{
    if (got.size() != want.size())
        return "size " + std::to_string(got.size()) + ", want " + std::to_string(want.size());
    for (size_t i = 0; i < got.size(); ++i)
        if (got[i] != want[i])
            return "byte " + std::to_string(i) + " (page " + std::to_string(i / kPage) + " + "
                + std::to_string(i % kPage) + ") is " + std::to_string(uint8_t(got[i])) + ", want "
                + std::to_string(uint8_t(want[i]));
    return {};
}

// --- the writer child ----------------------------------------------------

// The runtime the child makes must be its own: one alive at fork would make
// the child's copy inert (docs/api.md, "fork"). So the parent probes with a
// runtime it destroys before forking, to skip where the child could not run.
std::optional<std::string> cannot_run(const Config& config, bool needs_fault_tracking = false)
{
    auto rt = Runtime::create(config);
    if (!rt)
        return std::string("userfaultfd unavailable: ") + rt.error().message();
    if (needs_fault_tracking && (!(*rt)->has_feature("wp_shmem") || !(*rt)->has_feature("minor")))
        return std::string("evicting written pages needs write-protect and minor faults on shared memory");
    return std::nullopt;
}

#define SKIP_UNLESS_RUNNABLE(...)                                                                          \
    if (auto why = cannot_run(__VA_ARGS__))                                                                \
    GTEST_SKIP() << *why

// In the child: records the failure and ends the child (status 1).
#define CHILD_REQUIRE(child, cond, ...)                                                                    \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            (child).check(false, __VA_ARGS__);                                                             \
            _exit(1);                                                                                      \
        }                                                                                                  \
    } while (0)

std::unique_ptr<Runtime> child_runtime(ForkedChild& c, const Config& config)
{
    auto rt = Runtime::create(config);
    CHILD_REQUIRE(c, rt, "Runtime::create in the child: %s", rt ? "" : rt.error().message());
    return std::move(*rt);
}

char* child_map(ForkedChild& c, Runtime& rt, const std::string& path, size_t length, int64_t offset = 0,
    bool direct_io = false)
{
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    CHILD_REQUIRE(c, fd >= 0, "open: %s", strerror(errno));
    auto r = rt.map_file(fd, { .length = length, .offset = offset, .access = Access::ReadWrite, .direct_io = direct_io });
    close(fd); // the runtime keeps its own descriptor
    CHILD_REQUIRE(c, r, "map_file: %s", r ? "" : r.error().message());
    return static_cast<char*>(*r);
}

void child_sync(ForkedChild& c, Runtime& rt, void* p, size_t length, SyncFlags flags = SyncFlags::Sync)
{
    auto s = rt.sync(p, length, flags);
    CHILD_REQUIRE(c, s, "sync: %s", s ? "" : s.error().message());
}

void child_unmap(ForkedChild& c, Runtime& rt, void* p, size_t length)
{
    auto u = rt.unmap(p, length);
    CHILD_REQUIRE(c, u, "unmap: %s", u ? "" : u.error().message());
}

// Reaps a child that must have exited with 0, and reads the file back.
#define REAP_AND_READ_BACK(child, path, image)                                                             \
    {                                                                                                      \
        auto outcome_ = (child).reap(20);                                                                  \
        ASSERT_TRUE(outcome_.exited_zero()) << outcome_.describe();                                        \
        /* a child that ends itself (exit, _exit) reports its failed checks */                             \
        ASSERT_EQ(outcome_.report, "") << outcome_.describe();                                             \
    }                                                                                                      \
    FileImage image = read_in_fresh_process(path);                                                         \
    ASSERT_TRUE(image.error.empty()) << image.error

// --- writes survive the process ------------------------------------------

// How the writer ends.
enum class Ending {
    SyncUnmapDestroyExit, // sync, unmap, destroy the runtime, exit()
    UnmapThenExit,        // unmap (no sync), then _exit(): nothing else runs
    DestroyThenExit,      // destroy the runtime (no sync, no unmap), then _exit()
};

// Each test runs with asynchronous write tracking (the default where the
// kernel has it), write-protect faults (wp_async hidden), no tracking
// (wp_shmem hidden: every cached page is written back) and copy mode (minor
// hidden), as tests/file_sync_test.cc.
class Durability : public ::testing::TestWithParam<const char*> {
protected:
    Config config() const { return Config { .disable = GetParam() }; }

    // A 48-page file mapped as two overlapping regions ([0, 32) and
    // [16, 48)), written partly through each: page p % 3 == 0 wholly,
    // p % 3 == 1 in bytes [1000, 3000), p % 3 == 2 only read; then the child
    // ends as `ending` says. The file read back must hold exactly those
    // writes over its old contents.
    void writes_survive(Ending ending)
    {
        SKIP_UNLESS_RUNNABLE(config());
        constexpr size_t kPages = 48;
        TempFile f(kPages * kPage, 71);
        std::vector<char> want = f.contents();
        for (size_t page = 0; page < kPages; ++page) {
            if (page % 3 == 0)
                fill(want.data() + page * kPage, 'B', page * kPage, kPage);
            else if (page % 3 == 1)
                fill(want.data() + page * kPage + 1000, 'B', page * kPage + 1000, 2000);
        }
        ForkedChild child([&](ForkedChild& c) {
            auto rt = child_runtime(c, config());
            char* a = child_map(c, *rt, f.path(), 32 * kPage);
            char* b = child_map(c, *rt, f.path(), 32 * kPage, int64_t(16 * kPage));
            for (size_t page = 0; page < kPages; ++page) {
                // Pages 16..31 are in both regions: written through b.
                char* at = page < 16 ? a + page * kPage : b + (page - 16) * kPage;
                if (page % 3 == 0)
                    fill(at, 'B', page * kPage, kPage);
                else if (page % 3 == 1)
                    fill(at + 1000, 'B', page * kPage + 1000, 2000);
                else
                    c.check(at[7] == f.contents()[page * kPage + 7], "page %zu does not read the file", page);
            }
            switch (ending) {
            case Ending::SyncUnmapDestroyExit:
                child_sync(c, *rt, a, 32 * kPage);
                child_sync(c, *rt, b, 32 * kPage);
                child_unmap(c, *rt, a, 32 * kPage);
                child_unmap(c, *rt, b, 32 * kPage);
                rt.reset();
                exit(0);
            case Ending::UnmapThenExit:
                child_unmap(c, *rt, a, 32 * kPage);
                child_unmap(c, *rt, b, 32 * kPage);
                _exit(0);
            case Ending::DestroyThenExit:
                rt.reset();
                _exit(0);
            }
        });
        ASSERT_TRUE(child.started());
        REAP_AND_READ_BACK(child, f.path(), disk);
        EXPECT_EQ(disk.size, off_t(kPages * kPage));
        EXPECT_EQ(first_difference(disk.bytes, want), "");
    }
};

TEST_P(Durability, SyncedWritesSurviveUnmapDestructionAndExit) { writes_survive(Ending::SyncUnmapDestroyExit); }

TEST_P(Durability, UnmapAloneWritesBackBeforeTheProcessEnds) { writes_survive(Ending::UnmapThenExit); }

TEST_P(Durability, DestructionAloneWritesBackBeforeTheProcessEnds) { writes_survive(Ending::DestroyThenExit); }

// --- SIGKILL between syncs ------------------------------------------------

// A child writes generation A over the whole file and syncs, B over the odd
// pages and syncs, then C over pages p % 4 == 0 and p % 4 == 3 without
// syncing, and is killed with SIGKILL. What each sync wrote must be there:
// p % 4 == 2 is A, p % 4 == 1 is B, and a page written after the last sync
// holds, in every byte, its synced value or C (nothing promises C is lost:
// eviction under a budget may have written it back, mid-write even).
void killed_after_sync(const Config& config, SyncFlags flags, size_t pages)
{
    TempFile f(pages * kPage, 73);
    ForkedChild child([&](ForkedChild& c) {
        auto rt = child_runtime(c, config);
        char* p = child_map(c, *rt, f.path(), pages * kPage);
        fill(p, 'A', 0, pages * kPage);
        child_sync(c, *rt, p, pages * kPage, flags);
        for (size_t page = 1; page < pages; page += 2)
            fill(p + page * kPage, 'B', page * kPage, kPage);
        child_sync(c, *rt, p, pages * kPage, flags);
        for (size_t page = 0; page < pages; ++page)
            if (page % 4 == 0 || page % 4 == 3)
                fill(p + page * kPage, 'C', page * kPage, kPage);
        c.ready();
        c.wait_for_parent(); // never: the parent kills it
        _exit(1);
    });
    ASSERT_TRUE(child.started());
    const bool ready = child.wait_ready(20);
    kill(child.pid(), SIGKILL);
    auto outcome = child.reap(20);
    ASSERT_TRUE(ready) << "the child did not get to the kill: " << outcome.describe();
    ASSERT_TRUE(WIFSIGNALED(outcome.status) && WTERMSIG(outcome.status) == SIGKILL) << outcome.describe();
    ASSERT_EQ(outcome.report, "") << outcome.describe();
    FileImage disk = read_in_fresh_process(f.path());
    ASSERT_TRUE(disk.error.empty()) << disk.error;
    ASSERT_EQ(disk.size, off_t(pages * kPage)) << "the file's size changed";
    size_t c_pages = 0;
    for (size_t page = 0; page < pages; ++page) {
        const char synced = page % 2 == 1 ? 'B' : 'A';
        const bool written_after = page % 4 == 0 || page % 4 == 3;
        bool all_c = true;
        for (size_t i = 0; i < kPage; ++i) {
            const size_t at = page * kPage + i;
            const char got = disk.bytes[at];
            if (got == pattern(synced, at)) {
                all_c = false;
                continue;
            }
            ASSERT_TRUE(written_after && got == pattern('C', at))
                << "page " << page << " byte " << i << ": " << int(uint8_t(got)) << ", want the synced "
                << synced << (written_after ? " or the later C" : " exactly (not written after the sync)");
        }
        c_pages += written_after && all_c;
    }
    ::testing::Test::RecordProperty("pages_written_after_the_last_sync_found_on_disk", int(c_pages));
}

TEST_P(Durability, SigkillLosesOnlyWhatWasWrittenAfterTheLastSync)
{
    SKIP_UNLESS_RUNNABLE(config());
    // Async writes the pages into the kernel's cache without waiting for the
    // disk: that too outlives the process. None is msync(0): the same.
    for (SyncFlags flags : { SyncFlags::Sync, SyncFlags::Async, SyncFlags::None }) {
        SCOPED_TRACE("flags " + std::to_string(uint32_t(flags)));
        killed_after_sync(config(), flags, 64);
        if (HasFatalFailure())
            return;
    }
}

// --- never past the end of the file ---------------------------------------

// A file whose last page is partial: writes to the valid bytes of every
// page and to the bytes of the last page past the end. The file keeps its
// size and gets exactly the valid bytes, whether the child syncs or only
// destroys its runtime.
TEST_P(Durability, WriteBackOfAPartialLastPageNeverExtendsTheFile)
{
    SKIP_UNLESS_RUNNABLE(config());
    constexpr size_t kSize = 5 * kPage + 123;
    for (bool sync : { true, false }) {
        SCOPED_TRACE(sync ? "sync, unmap, destroy" : "destroy only");
        TempFile f(kSize, 79);
        std::vector<char> want(kSize);
        fill(want.data(), 'B', 0, kSize);
        ForkedChild child([&](ForkedChild& c) {
            auto rt = child_runtime(c, config());
            // Mapped past the end: pages wholly past it are never touched
            // (SIGBUS), the partial one is.
            char* p = child_map(c, *rt, f.path(), 8 * kPage);
            fill(p, 'B', 0, 6 * kPage); // the tail past the end too
            c.check(f.size_on_disk() == off_t(kSize), "the size changed before any write-back");
            if (sync) {
                child_sync(c, *rt, p, 8 * kPage);
                c.check(f.size_on_disk() == off_t(kSize), "sync extended the file");
                child_unmap(c, *rt, p, 8 * kPage);
                c.check(f.size_on_disk() == off_t(kSize), "unmap extended the file");
            }
            rt.reset();
            _exit(0);
        });
        ASSERT_TRUE(child.started());
        REAP_AND_READ_BACK(child, f.path(), disk);
        EXPECT_EQ(disk.size, off_t(kSize)) << "write-back extended the file";
        EXPECT_EQ(first_difference(disk.bytes, want), "");
    }
}

// Where the file system allows O_DIRECT: a file mapped with direct_io
// (whose descriptor is O_DIRECT, which refuses a write of a partial page) and
// a partial last page. Its valid bytes must be written back like any other
// file's; a sync must succeed.
std::optional<std::string> refuses_direct_io(const TempFile& f)
{
    int fd = f.open_again(O_RDWR | O_DIRECT);
    if (fd < 0)
        return std::string("this file system refuses O_DIRECT: ") + strerror(errno);
    close(fd);
    return std::nullopt;
}

TEST_P(Durability, DirectIoWritesBackAPartialLastPage)
{
    SKIP_UNLESS_RUNNABLE(config());
    constexpr size_t kSize = 5 * kPage + 123;
    for (bool sync : { true, false }) {
        SCOPED_TRACE(sync ? "sync, unmap, destroy" : "destroy only");
        TempFile f(kSize, 109);
        if (auto why = refuses_direct_io(f))
            GTEST_SKIP() << *why;
        std::vector<char> want(kSize);
        fill(want.data(), 'B', 0, kSize);
        ForkedChild child([&](ForkedChild& c) {
            auto rt = child_runtime(c, config());
            char* p = child_map(c, *rt, f.path(), 6 * kPage, 0, true);
            fill(p, 'B', 0, 6 * kPage);
            if (sync) {
                child_sync(c, *rt, p, 6 * kPage);
                child_unmap(c, *rt, p, 6 * kPage);
            }
            rt.reset();
            _exit(0);
        });
        ASSERT_TRUE(child.started());
        REAP_AND_READ_BACK(child, f.path(), disk);
        EXPECT_EQ(disk.size, off_t(kSize));
        EXPECT_EQ(first_difference(disk.bytes, want), "");
    }
}

// Someone else shrinks the file while the child holds written pages past
// the new end: sync, unmap and destruction must not extend it back.
TEST_P(Durability, AFileShrunkWhileMappedIsNotExtendedBack)
{
    SKIP_UNLESS_RUNNABLE(config());
    constexpr size_t kPages = 16, kShrunk = 6 * kPage + 700;
    TempFile f(kPages * kPage, 83);
    ForkedChild child([&](ForkedChild& c) {
        auto rt = child_runtime(c, config());
        char* p = child_map(c, *rt, f.path(), kPages * kPage);
        fill(p, 'B', 0, kPages * kPage);
        c.ready();
        c.wait_for_parent(); // the parent shrinks the file
        child_sync(c, *rt, p, kPages * kPage);
        c.check(f.size_on_disk() == off_t(kShrunk), "sync extended the file to %lld", (long long)f.size_on_disk());
        child_unmap(c, *rt, p, kPages * kPage);
        rt.reset();
        exit(0);
    });
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(child.wait_ready());
    ASSERT_EQ(truncate(f.path().c_str(), off_t(kShrunk)), 0) << strerror(errno);
    child.release();
    REAP_AND_READ_BACK(child, f.path(), disk);
    EXPECT_EQ(disk.size, off_t(kShrunk)) << "write-back extended the shrunk file";
    std::vector<char> want(kShrunk);
    fill(want.data(), 'B', 0, kShrunk);
    EXPECT_EQ(first_difference(disk.bytes, want), "");
}

INSTANTIATE_TEST_SUITE_P(Modes, Durability, ::testing::Values("", "wp_async", "wp_shmem", "minor"),
    [](const auto& info) { return std::string(*info.param ? info.param : "tracked"); });

// --- under a memory budget ------------------------------------------------

constexpr unsigned kBatch = 16;
constexpr size_t kBudgetPages = 64;

Config budget_config()
{
    Config c;
    c.memory_budget = kBudgetPages * kPage;
    c.eviction_batch_pages = kBatch;
    return c;
}

// Waits until the evictor has finished what it was doing: no eviction or
// write-back has happened for 100 ms. A write-back issued before someone else truncates the file can
// extend it again, as pwrite(2) would (docs/api.md, sync); a test of
// eviction after a truncation must truncate after the passes the writes
// started. Bounded; returns false if the evictor never went quiet.
bool wait_for_the_evictor(Runtime& rt)
{
    uint64_t last = UINT64_MAX;
    int quiet = 0;
    for (int i = 0; i < 500 && quiet < 5; ++i) {
        const RuntimeStats st = rt.stats();
        const uint64_t seen = st.evictions_clean + st.evictions_dirty + st.eviction_write_errors;
        quiet = seen == last ? quiet + 1 : 0;
        last = seen;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return quiet >= 5;
}

// A file 8x the budget written wholly: most pages are evicted, dirty,
// along the way. Everything is in the file after unmap, destruction and exit
// (no sync): evicted pages were written back before they were dropped.
TEST(DurabilityBudget, EvictedDirtyPagesSurviveTheProcess)
{
    SKIP_UNLESS_RUNNABLE(budget_config(), true);
    constexpr size_t kPages = 8 * kBudgetPages;
    TempFile f(kPages * kPage, 89);
    ForkedChild child([&](ForkedChild& c) {
        auto rt = child_runtime(c, budget_config());
        char* p = child_map(c, *rt, f.path(), kPages * kPage);
        fill(p, 'B', 0, kPages * kPage);
        c.check(rt->stats().evictions_dirty > 0, "a file 8x the budget, wholly written, evicted no dirty page");
        child_unmap(c, *rt, p, kPages * kPage);
        rt.reset();
        _exit(0);
    });
    ASSERT_TRUE(child.started());
    REAP_AND_READ_BACK(child, f.path(), disk);
    std::vector<char> want(kPages * kPage);
    fill(want.data(), 'B', 0, want.size());
    EXPECT_EQ(first_difference(disk.bytes, want), "");
}

// As SigkillLosesOnlyWhatWasWrittenAfterTheLastSync, under a budget: the
// budget evicts (and writes back) pages between and after the syncs, and
// never writes back a stale page over a synced one.
TEST(DurabilityBudget, SigkillLosesOnlyWhatWasWrittenAfterTheLastSync)
{
    SKIP_UNLESS_RUNNABLE(budget_config(), true);
    killed_after_sync(budget_config(), SyncFlags::Sync, 8 * kBudgetPages);
}

// Killed with no sync at all: every page no longer cached when the process
// died was evicted after it was written, so the file holds it whole.
TEST(DurabilityBudget, SigkillKeepsEveryEvictedPage)
{
    SKIP_UNLESS_RUNNABLE(budget_config(), true);
    constexpr size_t kPages = 8 * kBudgetPages;
    TempFile f(kPages * kPage, 97);
    int status_pipe[2];
    ASSERT_EQ(pipe2(status_pipe, O_CLOEXEC), 0);
    ForkedChild child([&](ForkedChild& c) {
        auto rt = child_runtime(c, budget_config());
        char* p = child_map(c, *rt, f.path(), kPages * kPage);
        fill(p, 'B', 0, kPages * kPage);
        // Nothing faults from here on: the pages cached now are the ones
        // that can still be lost.
        auto st = rt->region_stats(p);
        CHILD_REQUIRE(c, st, "region_stats failed");
        const uint64_t cached = st->cached_pages;
        (void)!write(status_pipe[1], &cached, sizeof cached);
        c.ready();
        c.wait_for_parent();
        _exit(1);
    });
    close(status_pipe[1]);
    ASSERT_TRUE(child.started());
    const bool ready = child.wait_ready(20);
    uint64_t cached = 0;
    const bool got = read(status_pipe[0], &cached, sizeof cached) == ssize_t(sizeof cached);
    close(status_pipe[0]);
    kill(child.pid(), SIGKILL);
    auto outcome = child.reap(20);
    ASSERT_TRUE(ready && got) << outcome.describe();
    ASSERT_EQ(outcome.report, "");
    ASSERT_LE(cached, kBudgetPages + kBatch) << "the budget holds within one batch";
    FileImage disk = read_in_fresh_process(f.path());
    ASSERT_TRUE(disk.error.empty()) << disk.error;
    ASSERT_EQ(disk.size, off_t(kPages * kPage));
    size_t whole = 0;
    for (size_t page = 0; page < kPages; ++page) {
        bool all_b = true;
        for (size_t i = 0; i < kPage; ++i) {
            const size_t at = page * kPage + i;
            all_b = all_b && disk.bytes[at] == pattern('B', at);
            ASSERT_TRUE(disk.bytes[at] == pattern('B', at) || disk.bytes[at] == f.contents()[at])
                << "page " << page << " byte " << i << " is neither the file's nor the written byte";
        }
        whole += all_b;
    }
    EXPECT_GE(whole, kPages - cached) << "a page no longer cached at the kill was dropped without its write-back";
}

// The file shrinks (someone else) while dirty pages past the new end are
// cached; reading the rest evicts them: eviction must not write them (it
// would extend the file) and unmap and destruction neither.
TEST(DurabilityBudget, EvictionAfterTheFileShrankDoesNotExtendIt)
{
    SKIP_UNLESS_RUNNABLE(budget_config(), true);
    constexpr size_t kPages = 8 * kBudgetPages, kShrunk = 300 * kPage + 1234;
    TempFile f(kPages * kPage, 101);
    ForkedChild child([&](ForkedChild& c) {
        auto rt = child_runtime(c, budget_config());
        char* p = child_map(c, *rt, f.path(), kPages * kPage);
        fill(p, 'B', 0, kPages * kPage); // the last ~budget pages stay cached, dirty
        c.check(wait_for_the_evictor(*rt), "the evictor did not go quiet within 10 s");
        c.ready();
        c.wait_for_parent(); // the parent shrinks the file to 300 pages and a bit
        volatile char sink = 0;
        for (size_t page = 0; page <= 300; ++page)
            sink = sink + p[page * kPage]; // faults, which evict
        c.check(f.size_on_disk() == off_t(kShrunk), "eviction extended the file to %lld",
            (long long)f.size_on_disk());
        child_unmap(c, *rt, p, kPages * kPage);
        rt.reset();
        _exit(0);
    });
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(child.wait_ready());
    ASSERT_EQ(truncate(f.path().c_str(), off_t(kShrunk)), 0) << strerror(errno);
    child.release();
    REAP_AND_READ_BACK(child, f.path(), disk);
    EXPECT_EQ(disk.size, off_t(kShrunk)) << "write-back extended the shrunk file";
    std::vector<char> want(kShrunk);
    fill(want.data(), 'B', 0, kShrunk);
    EXPECT_EQ(first_difference(disk.bytes, want), "");
}

// Eviction writes a direct_io file's partial last page back too: written,
// then evicted by reading the rest, then the process ends without a sync.
TEST(DurabilityBudget, EvictionWritesBackADirectIoFilesPartialLastPage)
{
    SKIP_UNLESS_RUNNABLE(budget_config(), true);
    constexpr size_t kPages = 4 * kBudgetPages, kSize = (kPages - 1) * kPage + 77;
    TempFile f(kSize, 113);
    if (auto why = refuses_direct_io(f))
        GTEST_SKIP() << *why;
    ForkedChild child([&](ForkedChild& c) {
        auto rt = child_runtime(c, budget_config());
        char* p = child_map(c, *rt, f.path(), kPages * kPage, 0, true);
        fill(p, 'B', 0, kPages * kPage);
        volatile char sink = 0;
        for (size_t page = 0; page < 2 * kBudgetPages; ++page)
            sink = sink + p[page * kPage]; // evicts the last pages
        c.check(rt->stats().eviction_write_errors == 0, "%llu pages failed to be written back on eviction",
            (unsigned long long)rt->stats().eviction_write_errors);
        rt.reset();
        _exit(0);
    });
    ASSERT_TRUE(child.started());
    REAP_AND_READ_BACK(child, f.path(), disk);
    EXPECT_EQ(disk.size, off_t(kSize));
    std::vector<char> want(kSize);
    fill(want.data(), 'B', 0, kSize);
    EXPECT_EQ(first_difference(disk.bytes, want), "");
}

// --- stores ---------------------------------------------------------------

// A store kept in a file: what a user's persistent store looks like. It
// refuses (and counts) any write that reaches past size().
class FileStore : public Store {
public:
    explicit FileStore(int fd)
        : fd_(fd)
    {
    }
    ~FileStore() override { close(fd_); }
    uint64_t size() noexcept override
    {
        struct stat st {};
        return fstat(fd_, &st) == 0 ? uint64_t(st.st_size) : 0;
    }
    bool writable() const noexcept override { return true; }
    int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        ssize_t n = pread(fd_, buffer, bytes, off_t(offset));
        return n < 0 ? -errno : n;
    }
    int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        if (offset + bytes > size()) {
            past_end_writes_.fetch_add(1);
            return -EINVAL;
        }
        ssize_t n = pwrite(fd_, buffer, bytes, off_t(offset));
        return n < 0 ? -errno : n;
    }
    int flush() noexcept override { return fdatasync(fd_) == 0 ? 0 : -errno; }

    std::atomic<unsigned> past_end_writes_ { 0 };

private:
    int fd_;
};

// A store region over a file-backed store of 40 pages and a bit, written in
// every byte (the tail past the store's end too), then unmapped and
// destroyed without a sync: every valid byte is in the file, the size is the
// same and the store was never asked to write past its size. Under a region
// budget smaller than the store, evictions write too, the partial last page
// among them.
void store_writes_survive(bool budget)
{
    constexpr size_t kSize = 40 * kPage + 321;
    TempFile f(kSize, 103);
    ForkedChild child([&](ForkedChild& c) {
        // The region's own budget (16 pages) must hold one batch.
        auto rt = child_runtime(c, Config { .eviction_batch_pages = kBatch });
        int fd = ::open(f.path().c_str(), O_RDWR | O_CLOEXEC);
        CHILD_REQUIRE(c, fd >= 0, "open: %s", strerror(errno));
        auto store = std::make_shared<FileStore>(fd);
        auto r = rt->map_store(store, { .length = 41 * kPage, .access = Access::ReadWrite,
            .budget = budget ? 16 * kPage : 0 });
        CHILD_REQUIRE(c, r, "map_store: %s", r ? "" : r.error().message());
        char* p = static_cast<char*>(*r);
        fill(p, 'B', 0, 41 * kPage);
        if (budget) {
            // Reading the first 40 pages again evicts the last ones.
            volatile char sink = 0;
            for (size_t page = 0; page < 40; ++page)
                sink = sink + p[page * kPage];
            c.check(rt->region_stats(p)->evictions_dirty > 0, "a budget of 16 pages over 41 evicted nothing dirty");
        }
        child_unmap(c, *rt, p, 41 * kPage);
        rt.reset();
        c.check(store->past_end_writes_.load() == 0, "the store was asked %u times to write past its size",
            store->past_end_writes_.load());
        _exit(0);
    });
    ASSERT_TRUE(child.started());
    REAP_AND_READ_BACK(child, f.path(), disk);
    EXPECT_EQ(disk.size, off_t(kSize));
    std::vector<char> want(kSize);
    fill(want.data(), 'B', 0, kSize);
    EXPECT_EQ(first_difference(disk.bytes, want), "");
}

TEST(DurabilityStore, StoreWritesSurviveTheProcessAndNeverPassTheEnd)
{
    SKIP_UNLESS_RUNNABLE(Config {});
    store_writes_survive(false);
}

TEST(DurabilityStore, UnderABudgetStoreWritesSurviveTheProcessAndNeverPassTheEnd)
{
    SKIP_UNLESS_RUNNABLE(budget_config(), true);
    store_writes_survive(true);
}

// --- the C API ----------------------------------------------------------

// A C program that writes a shared file region and returns from main (or
// calls exit()) without faultline_destroy: the C API's table destroys its
// runtimes at exit (docs/api.md, "fork"), which writes the regions back.
TEST(DurabilityCApi, ExitWithoutDestroyWritesBack)
{
    SKIP_UNLESS_RUNNABLE(Config {});
    constexpr size_t kPages = 16;
    TempFile f(kPages * kPage, 107);
    ForkedChild child([&](ForkedChild& c) {
        faultline_runtime_t rt = 0;
        CHILD_REQUIRE(c, faultline_create(nullptr, &rt) == 0, "faultline_create: %s", faultline_last_error());
        int fd = ::open(f.path().c_str(), O_RDWR | O_CLOEXEC);
        CHILD_REQUIRE(c, fd >= 0, "open: %s", strerror(errno));
        void* p = nullptr;
        CHILD_REQUIRE(c, faultline_map_file(rt, fd, 0, kPages * kPage, FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE,
                             FAULTLINE_FILE_SHARED, "durable", &p) == 0,
            "faultline_map_file: %s", faultline_last_error());
        close(fd);
        fill(static_cast<char*>(p), 'B', 0, kPages * kPage);
        exit(0);
    });
    ASSERT_TRUE(child.started());
    REAP_AND_READ_BACK(child, f.path(), disk);
    std::vector<char> want(kPages * kPage);
    fill(want.data(), 'B', 0, want.size());
    EXPECT_EQ(first_difference(disk.bytes, want), "");
}

} // namespace
} // namespace faultline::testing
