// Writing file regions back (issue: file regions, parts 3 and 4): dirty
// tracking with write-protect faults, sync writing exactly the dirty pages
// and never past the end, a write racing a sync never lost, write errors
// keeping pages dirty, write-back on unmap and on destruction, and the
// fallback without write-protect on memfd ranges.
#include "os/fault_injection.h"
#include "support/temp_file.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

// Each test runs with write tracking (the default) and without it
// (FAULTLINE_DISABLE=wp_shmem: every cached page counts as dirty), and in
// copy mode (no minor faults).
class FileSync : public ::testing::TestWithParam<const char*> {
protected:
    bool tracked(Runtime& rt) const { return rt.has_feature("wp_shmem") && rt.has_feature("minor"); }
    // Tracked from the first map: without UFFDIO_CONTINUE_MODE_WP (before
    // 6.4, or continue_wp hidden) a mapped page counts dirty at once, and
    // tracking is exact from its first write-back on.
    bool exact(Runtime& rt) const { return tracked(rt) && rt.has_feature("continue_wp"); }
};

TEST_P(FileSync, SyncWritesExactlyTheDirtyPagesAndKeepsTheSize)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(64 * kPage + 300, 31);
    int rw = f.open_again(O_RDWR);
    auto r = rt->map_file(rw, { .length = 80 * kPage, .access = Access::ReadWrite });
    close(rw);
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    for (size_t i = 0; i < 65; ++i)
        (void)p[i * kPage]; // read everything: nothing dirty yet
    auto before = rt->region_stats(*r);
    EXPECT_EQ(before->dirty_pages, exact(*rt) ? 0u : 65u);
    p[2 * kPage + 1] = 'a';
    p[40 * kPage + 2] = 'b';
    p[64 * kPage + 299] = 'c'; // the last byte of the file
    p[64 * kPage + 300] = 'd'; // past the end, in the last page: never written back
    auto st = rt->region_stats(*r);
    if (exact(*rt)) {
        EXPECT_EQ(st->dirty_pages, 3u);
    }
    ASSERT_TRUE(rt->sync(*r, 80 * kPage, SyncFlags::Sync));
    st = rt->region_stats(*r);
    const uint64_t written = st->file_bytes_written - before->file_bytes_written;
    if (exact(*rt))
        EXPECT_EQ(written, 2 * kPage + 300) << "exactly the three dirty pages, the last one up to the end";
    else
        EXPECT_EQ(written, 64 * kPage + 300) << "every cached page, never past the end";
    EXPECT_EQ(st->dirty_pages, tracked(*rt) ? 0u : 65u);
    EXPECT_EQ(f.size_on_disk(), off_t(64 * kPage + 300)) << "sync never extends the file";
    auto disk = f.read_back();
    auto want = f.contents();
    want[2 * kPage + 1] = 'a';
    want[40 * kPage + 2] = 'b';
    want[64 * kPage + 299] = 'c';
    EXPECT_EQ(disk, want);
    // Nothing dirty: a second sync writes nothing (when writes are tracked).
    ASSERT_TRUE(rt->sync(*r, 80 * kPage, SyncFlags::Async));
    if (tracked(*rt)) {
        EXPECT_EQ(rt->region_stats(*r)->file_bytes_written, st->file_bytes_written);
    }
}

TEST_P(FileSync, AWriteRacingASyncIsNeverLost)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(256 * kPage, 37);
    int rw = f.open_again(O_RDWR);
    auto r = rt->map_file(rw, { .length = 256 * kPage, .access = Access::ReadWrite });
    close(rw);
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile uint64_t*>(*r);
    const size_t per_page = kPage / sizeof(uint64_t);
    std::atomic<bool> stop { false };
    std::atomic<uint64_t> last { 0 };
    std::thread writer([&] {
        // Every page gets an increasing counter; `last` is published after
        // the writes of a round are done.
        for (uint64_t round = 1; !stop.load(); ++round) {
            for (size_t page = 0; page < 256; ++page)
                p[page * per_page] = round;
            last.store(round);
        }
    });
    for (int i = 0; i < 20; ++i)
        ASSERT_TRUE(rt->sync(*r, 256 * kPage, SyncFlags::Async));
    stop.store(true);
    writer.join();
    const uint64_t final_round = last.load();
    ASSERT_TRUE(rt->sync(*r, 256 * kPage, SyncFlags::Sync));
    auto disk = f.read_back();
    for (size_t page = 0; page < 256; ++page) {
        uint64_t v;
        memcpy(&v, disk.data() + page * kPage, sizeof v);
        ASSERT_GE(v, final_round) << "page " << page << ": a write that landed before the last sync was lost";
    }
}

TEST_P(FileSync, AWriteErrorKeepsThePagesDirty)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(16 * kPage, 41);
    int rw = f.open_again(O_RDWR);
    auto r = rt->map_file(rw, { .length = 16 * kPage, .access = Access::ReadWrite });
    close(rw);
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile char*>(*r);
    p[3 * kPage] = 'x';
    for (int error : { EIO, ENOSPC }) {
        os::FaultInjection::arm(os::InjectOp::FileWrite, error, 1000);
        auto s = rt->sync(*r, 16 * kPage, SyncFlags::Sync);
        os::FaultInjection::disarm_all();
        ASSERT_FALSE(s);
        EXPECT_EQ(s.error().code(), error);
        EXPECT_NE(f.read_back()[3 * kPage], 'x');
        if (exact(*rt)) {
            EXPECT_EQ(rt->region_stats(*r)->dirty_pages, 1u) << "nothing is dropped: the page stays dirty";
        }
    }
    ASSERT_TRUE(rt->sync(*r, 16 * kPage, SyncFlags::Sync));
    EXPECT_EQ(f.read_back()[3 * kPage], 'x');
}

TEST_P(FileSync, UnmapAndDestructionWriteBack)
{
    TempFile f(32 * kPage, 43);
    {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
        auto a = rt->map_file(f.path().c_str(), { .length = 16 * kPage, .access = Access::ReadWrite });
        auto b = rt->map_file(f.path().c_str(), { .length = 16 * kPage, .offset = int64_t(16 * kPage), .access = Access::ReadWrite });
        ASSERT_TRUE(a && b) << (a ? b.error().message() : a.error().message());
        static_cast<volatile char*>(*a)[kPage] = 'U';
        static_cast<volatile char*>(*b)[kPage] = 'D';
        ASSERT_TRUE(rt->unmap(*a, 16 * kPage));
        EXPECT_EQ(f.read_back()[kPage], 'U') << "unmap writes a shared region back";
        // b is still mapped when the runtime goes.
    }
    EXPECT_EQ(f.read_back()[17 * kPage], 'D') << "destruction writes every shared region back";
    EXPECT_EQ(f.size_on_disk(), off_t(32 * kPage));
}

// A region read while read-only, then made writable: its writes reach the
// file. (Without UFFDIO_CONTINUE_MODE_WP its pages were mapped without write
// protection and left clean — no view could write them — so making the
// region writable must count them dirty.) And while nothing could write,
// a sync never wrote the cache's bytes over the file's.
TEST_P(FileSync, ARegionMadeWritableLaterHasItsWritesSynced)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(8 * kPage, 67);
    int rw = f.open_again(O_RDWR);
    auto r = rt->map_file(rw, { .length = 8 * kPage, .access = Access::Read });
    close(rw);
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    const auto& want = f.contents();
    for (size_t i = 0; i < 8; ++i)
        ASSERT_EQ(p[i * kPage + 3], want[i * kPage + 3]);
    // Another process changes the file under the read-only region: a sync
    // has nothing of ours to write there.
    const char theirs = char(~want[6 * kPage]);
    ASSERT_EQ(pwrite(f.fd(), &theirs, 1, off_t(6 * kPage)), 1);
    ASSERT_TRUE(rt->sync(*r, 8 * kPage, SyncFlags::Sync));
    EXPECT_EQ(f.read_back()[6 * kPage], theirs) << "a sync of a region nobody could write wrote the file";
    ASSERT_TRUE(rt->protect(*r, 8 * kPage, Access::ReadWrite));
    for (size_t i = 0; i < 8; i += 2)
        p[i * kPage + 3] = char(~want[i * kPage + 3]);
    ASSERT_TRUE(rt->sync(*r, 8 * kPage, SyncFlags::Sync));
    auto disk = f.read_back();
    for (size_t i = 0; i < 8; i += 2)
        EXPECT_EQ(disk[i * kPage + 3], char(~want[i * kPage + 3])) << "page " << i << ": a write after protect was lost";
}

TEST_P(FileSync, InvalidateRereadsTheFile)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(8 * kPage, 47);
    auto r = rt->map_file(f.fd(), { .length = 8 * kPage });
    ASSERT_TRUE(r);
    auto* p = static_cast<volatile char*>(*r);
    ASSERT_EQ(p[kPage], f.contents()[kPage]);
    // Someone else changes the file; the cached page does not know.
    const char changed = char(~f.contents()[kPage]);
    ASSERT_EQ(pwrite(f.fd(), &changed, 1, off_t(kPage)), 1);
    ASSERT_TRUE(rt->sync(*r, 8 * kPage, SyncFlags::Invalidate));
    EXPECT_EQ(p[kPage], changed) << "after Invalidate the next touch reads the file again";
}

TEST_P(FileSync, WritesRacingSyncAndInvalidateAreNeverLost)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(8 * kPage, 53);
    int rw = f.open_again(O_RDWR);
    auto r = rt->map_file(rw, { .length = 8 * kPage, .access = Access::ReadWrite });
    close(rw);
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    // A writer keeps writing while syncs run: no value it wrote may be lost,
    // neither to a page dropped by Invalidate between its write and the next
    // harvest, nor to a sync re-protecting a page between a write-protect
    // fault's dirty mark and its lifting of the protection.
    std::atomic<bool> stop { false };
    std::atomic<uint8_t> last { 0 };
    std::thread writer([&] {
        for (uint8_t v = 1; !stop.load(); v = uint8_t(v % 250 + 1)) {
            for (size_t i = 0; i < 8; ++i)
                p[i * kPage + 7] = char(v);
            last.store(v);
        }
    });
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(150);
    for (bool invalidate = false; std::chrono::steady_clock::now() < until; invalidate = !invalidate)
        ASSERT_TRUE(rt->sync(*r, 8 * kPage, invalidate ? SyncFlags::Invalidate : SyncFlags::Async));
    stop = true;
    writer.join();
    for (size_t i = 0; i < 8; ++i)
        EXPECT_EQ(uint8_t(p[i * kPage + 7]), last.load()) << "page " << i;
    ASSERT_TRUE(rt->sync(*r, 8 * kPage, SyncFlags::Sync));
    auto disk = f.read_back();
    for (size_t i = 0; i < 8; ++i)
        EXPECT_EQ(uint8_t(disk[i * kPage + 7]), last.load()) << "page " << i << " on disk";
}

TEST_P(FileSync, AWriteAsTheFirstTouchIsDirtyAndWritten)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(64 * kPage, 61);
    int rw = f.open_again(O_RDWR);
    // Isolated faults (one page each): the written page is mapped writable
    // and dirty on its first fault, its neighbours are not touched.
    auto r = rt->map_file(rw, { .length = 64 * kPage, .access = Access::ReadWrite, .readahead_min_pages = 1, .readahead_max_pages = 1 });
    close(rw);
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    const auto& want = f.contents();
    for (size_t i = 5; i < 64; i += 16)
        p[i * kPage + 9] = char(~want[i * kPage + 9]);
    for (size_t i = 5; i < 64; i += 16) {
        EXPECT_EQ(p[i * kPage + 8], want[i * kPage + 8]) << "the rest of a written page is the file's";
        EXPECT_EQ(p[i * kPage + 9], char(~want[i * kPage + 9]));
    }
    if (tracked(*rt)) {
        EXPECT_EQ(rt->region_stats(*r)->dirty_pages, 4u);
    }
    ASSERT_TRUE(rt->sync(*r, 64 * kPage, SyncFlags::Sync));
    auto disk = f.read_back();
    for (size_t i = 0; i < 64; ++i)
        for (size_t b : { size_t(8), size_t(9) }) {
            const bool written = i % 16 == 5 && b == 9;
            ASSERT_EQ(disk[i * kPage + b], written ? char(~want[i * kPage + b]) : want[i * kPage + b]) << "page " << i;
        }
    if (tracked(*rt)) {
        EXPECT_EQ(rt->region_stats(*r)->dirty_pages, 0u);
    }
}

TEST_P(FileSync, DiscardOfAPrivateRegionReadsTheFileAgainAndOfASharedOneKeepsItsPages)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(4 * kPage, 59);
    int rw = f.open_again(O_RDWR);
    auto priv = rt->map_file(rw, { .length = 4 * kPage, .access = Access::ReadWrite, .sharing = Sharing::Private });
    auto shared = rt->map_file(rw, { .length = 4 * kPage, .access = Access::ReadWrite });
    close(rw);
    ASSERT_TRUE(priv) << priv.error().message();
    ASSERT_TRUE(shared) << shared.error().message();
    auto* pp = static_cast<volatile char*>(*priv);
    auto* sp = static_cast<volatile char*>(*shared);
    const auto& want = f.contents();
    pp[kPage] = char(~want[kPage]);
    sp[2 * kPage] = char(~want[2 * kPage]);
    ASSERT_TRUE(rt->discard(*priv, 4 * kPage));
    ASSERT_TRUE(rt->discard(*shared, 4 * kPage));
    EXPECT_EQ(pp[kPage], want[kPage]) << "the private copy is gone: the file's byte again";
    EXPECT_EQ(pp[2 * kPage], char(~want[2 * kPage])) << "a private region sees the shared write (same cache)";
    EXPECT_EQ(sp[2 * kPage], char(~want[2 * kPage])) << "a shared region's written page is the file's";
    ASSERT_TRUE(rt->sync(*shared, 4 * kPage, SyncFlags::Sync));
    EXPECT_EQ(f.read_back()[2 * kPage], char(~want[2 * kPage])) << "discard never loses a shared write";
}

// Copy mode (no minor faults): a read's completion writes its pages into
// the cache's memfd and only then counts them cached. In between, the kernel
// maps such a page to any thread that touches it, without a fault, and the
// thread may write it. A sync asked for after that write must write the page
// (it waits for the read to settle) — it once skipped the page as "not
// cached" and reported success without the write (a C store test caught it
// under load). The pause holds the window open.
TEST(FileSyncCopyMode, APageWrittenWhileItsReadFinishesIsSynced)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = "minor" });
    TempFile f(16 * kPage, 43);
    int rw = f.open_again(O_RDWR);
    auto r = rt->map_file(rw, { .length = 16 * kPage, .access = Access::ReadWrite });
    close(rw);
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    using os::FaultInjection;
    using os::InjectOp;
    FaultInjection::arm(InjectOp::FillPause, 500, 1, 0, kPage);
    std::atomic<bool> reader_done { false };
    std::thread reader([&] {
        (void)p[0]; // faults; its read of page 0 pauses before it settles
        reader_done = true;
    });
    // Page 0 is in the memfd once the read wrote it there (mincore sees the
    // shared mapping's page cache).
    unsigned char in_core = 0;
    for (int i = 0; i < 5000 && !(in_core & 1); ++i) {
        ASSERT_EQ(mincore(const_cast<char*>(p), kPage, &in_core), 0);
        if (!(in_core & 1))
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const bool window = (in_core & 1) && !reader_done && FaultInjection::taken(InjectOp::FillPause) == 1;
    p[5] = 'X'; // the kernel maps the page: no fault, nothing marks it
    ASSERT_TRUE(rt->sync(*r, 16 * kPage, SyncFlags::Sync));
    reader.join();
    FaultInjection::disarm_all();
    if (!window)
        GTEST_SKIP() << "the read settled before the test could write inside it (a 500 ms pause was not enough here)";
    EXPECT_EQ(f.read_back()[5], 'X') << "the sync reported success without the write";
}

// Asynchronous tracking (WP_ASYNC, the default where the kernel has it),
// write-protect faults (wp_async hidden), the same as before 6.4 (without
// UFFDIO_CONTINUE_MODE_WP: a mapped page counts dirty until its first
// write-back), nothing (wp_shmem hidden: every cached page is written), copy
// mode (minor hidden).
INSTANTIATE_TEST_SUITE_P(Modes, FileSync, ::testing::Values("", "wp_async", "wp_async,continue_wp", "wp_shmem", "minor"),
    [](const auto& info) {
        std::string name = *info.param ? info.param : "tracked";
        std::replace(name.begin(), name.end(), ',', '_');
        return name;
    });

} // namespace
} // namespace faultline::testing
