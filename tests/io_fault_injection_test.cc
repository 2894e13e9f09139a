// I/O fault injection (issue 14, part 2): the hook of os/fault_injection.h
// on io_uring (and I/O worker) reads, write-back, the evictor's write-back
// and a user's store. Each failure must reach the user as the documented
// error or as SIGBUS in the faulting thread, the runtime must keep serving
// every other region meanwhile, and no written byte may be dropped: short
// reads are never shown as data (zeros or a stale buffer), slow completions
// hold only their own faults, failed write-backs keep the pages dirty and a
// later sync writes exactly them.
#include "os/fault_injection.h"
#include "support/guarded_access.h"
#include "support/temp_file.h"
#include "test_support.h"

#include <faultline/store.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

using os::FaultInjection;
using os::InjectOp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The injection state is global: every test starts and ends disarmed.
class Injected : public ::testing::Test {
protected:
    void SetUp() override { FaultInjection::disarm_all(); }
    void TearDown() override { FaultInjection::disarm_all(); }
};
template <typename P>
class InjectedP : public ::testing::TestWithParam<P> {
protected:
    void SetUp() override { FaultInjection::disarm_all(); }
    void TearDown() override { FaultInjection::disarm_all(); }
};

// Copies [p, p+len) out under guarded_access: 0, or the signal that stopped
// the copy.
int copy_out(const char* p, size_t len, std::vector<char>& out)
{
    out.assign(len, 0);
    return guarded_access([&] { memcpy(out.data(), p, len); });
}

// How many bytes of `got` differ from `want` (which starts at `offset`).
size_t wrong_bytes(const std::vector<char>& got, const std::vector<char>& want, size_t offset)
{
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i)
        bad += got[i] != want[offset + i];
    return bad;
}

int touch(const char* p) { return guarded_access([&] { (void)*static_cast<const volatile char*>(p); }); }

// Waits (at most 2 s) until `op` has been taken `n` times.
bool wait_taken(InjectOp op, int n)
{
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    while (FaultInjection::taken(op) < n)
        if (Clock::now() > deadline)
            return false;
        else
            std::this_thread::sleep_for(milliseconds(1));
    return true;
}

// Milliseconds since `t`.
long since(Clock::time_point t) { return long(std::chrono::duration_cast<milliseconds>(Clock::now() - t).count()); }

// ---------------------------------------------------------------- file reads

// Zero-copy (minor faults: reads land in the cache's memfd), copy mode (no
// minor faults: reads land in a staging buffer that holds the previous
// read's bytes), and the I/O worker (no io_uring).
class FileReads : public InjectedP<const char*> {};

// Four pages per read, aligned: a fault on pages 8..11 reads [8, 12).
constexpr unsigned kRead = 4;
FileMapOptions four_page_reads(size_t pages, int64_t offset = 0)
{
    return { .length = pages * kPage, .offset = offset, .readahead_min_pages = kRead, .readahead_max_pages = kRead };
}

TEST_P(FileReads, AShortReadServesItsWholePagesAndTheRestIsReadAgain)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(64 * kPage, 101);
    auto r = rt->map_file(f.fd(), four_page_reads(64));
    ASSERT_TRUE(r) << r.error().message();
    const char* p = static_cast<const char*>(*r);
    // Copy mode: fill the staging buffers with other pages first, so that a
    // short read's undelivered part holds stale bytes of the file there.
    for (size_t page = 32; page < 64; page += kRead)
        ASSERT_EQ(touch(p + page * kPage), 0);
    // The read of [8, 12) delivers a page and a half.
    FaultInjection::arm(InjectOp::FileReadShort, int(2 * kPage + kPage / 2), 1, 8 * kPage, 8 * kPage + 1);
    std::vector<char> got;
    ASSERT_EQ(copy_out(p + 8 * kPage, kPage, got), 0) << "the faulting page was delivered whole";
    EXPECT_EQ(FaultInjection::taken(InjectOp::FileReadShort), 1);
    EXPECT_EQ(wrong_bytes(got, f.contents(), 8 * kPage), 0u);
    // Page 9 came half, 10 and 11 not at all: read again, never zeros or
    // another page's bytes.
    ASSERT_EQ(copy_out(p + 9 * kPage, 3 * kPage, got), 0);
    EXPECT_EQ(wrong_bytes(got, f.contents(), 9 * kPage), 0u);
    EXPECT_GE(rt->region_stats(p)->file_read_errors, 1u);
}

TEST_P(FileReads, AShortReadThatMissesTheFaultingPageIsSigbusThereNeverZeros)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(64 * kPage, 103);
    auto r = rt->map_file(f.fd(), four_page_reads(64));
    ASSERT_TRUE(r) << r.error().message();
    const char* p = static_cast<const char*>(*r);
    for (size_t page = 32; page < 64; page += kRead)
        ASSERT_EQ(touch(p + page * kPage), 0);
    // One byte short: the last page of [8, 12) is the faulting one.
    FaultInjection::arm(InjectOp::FileReadShort, 1, 1, 8 * kPage, 8 * kPage + 1);
    EXPECT_EQ(touch(p + 11 * kPage + kPage - 1), SIGBUS);
    EXPECT_EQ(FaultInjection::taken(InjectOp::FileReadShort), 1);
    // The pages before it came whole.
    std::vector<char> got;
    ASSERT_EQ(copy_out(p + 8 * kPage, 3 * kPage, got), 0);
    EXPECT_EQ(wrong_bytes(got, f.contents(), 8 * kPage), 0u);
    // As after any failed read (docs/api.md): SIGBUS in this region until it
    // is unmapped; another region of the file reads the page whole.
    EXPECT_EQ(touch(p + 11 * kPage), SIGBUS);
    auto again = rt->map_file(f.fd(), four_page_reads(16));
    ASSERT_TRUE(again);
    ASSERT_EQ(copy_out(static_cast<const char*>(*again) + 11 * kPage, kPage, got), 0);
    EXPECT_EQ(wrong_bytes(got, f.contents(), 11 * kPage), 0u);
    // A read that delivers nothing at all inside the file (an early EOF).
    FaultInjection::arm(InjectOp::FileReadShort, INT_MAX, 1, 20 * kPage, 20 * kPage + 1);
    EXPECT_EQ(touch(p + 21 * kPage), SIGBUS);
    EXPECT_EQ(FaultInjection::taken(InjectOp::FileReadShort), 1);
    EXPECT_GE(rt->region_stats(p)->file_read_errors, 2u);
    // Every other page of the region is untouched by all this.
    ASSERT_EQ(copy_out(p + 24 * kPage, 40 * kPage, got), 0);
    EXPECT_EQ(wrong_bytes(got, f.contents(), 24 * kPage), 0u);
}

TEST_P(FileReads, ReadErrorsReachOnlyTheFaultingThread)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(64 * kPage, 105), other(64 * kPage, 106);
    auto r = rt->map_file(f.fd(), four_page_reads(64));
    auto o = rt->map_file(other.fd(), four_page_reads(64));
    ASSERT_TRUE(r && o);
    const char* p = static_cast<const char*>(*r);
    for (int error : { EIO, ENOSPC, EINTR }) {
        const size_t page = error == EIO ? 4 : error == ENOSPC ? 12 : 20;
        FaultInjection::arm(InjectOp::FileRead, error, 1, page * kPage, page * kPage + 1);
        int sig = 0;
        std::thread t([&] { sig = touch(p + page * kPage); });
        t.join();
        EXPECT_EQ(sig, SIGBUS) << strerror(error);
    }
    // The other file's region, read after the failures, is whole.
    std::vector<char> got;
    ASSERT_EQ(copy_out(static_cast<const char*>(*o), 64 * kPage, got), 0);
    EXPECT_EQ(wrong_bytes(got, other.contents(), 0), 0u);
    EXPECT_EQ(rt->region_stats(p)->file_read_errors, 3u);
}

TEST_P(FileReads, ASlowCompletionHoldsOnlyItsOwnFaults)
{
    // One handler thread: were it waiting for the slow read, nothing else
    // would be served.
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .handler_threads = 1, .disable = GetParam() });
    TempFile a(64 * kPage, 107), b(32 * kPage, 108);
    auto ra = rt->map_file(a.fd(), four_page_reads(64));
    auto rb = rt->map_file(b.fd(), four_page_reads(32));
    auto anon = rt->map_anonymous({ .size = 64 * kPage });
    ASSERT_TRUE(ra && rb && anon);
    const char* pa = static_cast<const char*>(*ra);
    // Reads from offset 40 pages on are a's only (b is 32 pages): the read
    // of [40, 44) completes 400 ms late. Eight threads fault on it; armed
    // for eight, it is taken once: they all wait for the one read.
    constexpr long kDelay = 400;
    FaultInjection::arm(InjectOp::FileReadDelay, int(kDelay), 8, 40 * kPage, 40 * kPage + 1);
    const auto start = Clock::now();
    std::atomic<int> done { 0 }, wrong { 0 }, signals { 0 };
    std::vector<std::thread> waiters;
    for (int t = 0; t < 8; ++t)
        waiters.emplace_back([&, t] {
            const size_t at = (40 + t % 4) * kPage + size_t(t) * 100;
            char c = 0;
            if (guarded_access([&] { c = *static_cast<const volatile char*>(pa + at); }) != 0)
                signals.fetch_add(1);
            else if (c != a.contents()[at])
                wrong.fetch_add(1);
            done.fetch_add(1);
        });
    EXPECT_TRUE(wait_taken(InjectOp::FileReadDelay, 1));
    // Meanwhile: the other file, anonymous memory and other pages of the
    // same file are served at once.
    const auto served = Clock::now();
    std::vector<char> got;
    EXPECT_EQ(copy_out(static_cast<const char*>(*rb), 32 * kPage, got), 0);
    EXPECT_EQ(wrong_bytes(got, b.contents(), 0), 0u);
    EXPECT_EQ(copy_out(pa, 16 * kPage, got), 0);
    EXPECT_EQ(wrong_bytes(got, a.contents(), 0), 0u);
    for (size_t page = 0; page < 64; ++page)
        static_cast<volatile char*>(*anon)[page * kPage] = 1;
    EXPECT_LT(since(served), kDelay / 2) << "other faults waited for the slow completion";
    EXPECT_EQ(done.load(), 0) << "a fault on the slow read returned before its completion";
    for (auto& t : waiters)
        t.join();
    EXPECT_GE(since(start), kDelay - 50);
    EXPECT_EQ(signals.load(), 0);
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(FaultInjection::taken(InjectOp::FileReadDelay), 1) << "eight faults, one read";
}

TEST_P(FileReads, ASlowFailureIsSigbusWhenItArrives)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(16 * kPage, 109);
    auto r = rt->map_file(f.fd(), four_page_reads(16));
    ASSERT_TRUE(r);
    const char* p = static_cast<const char*>(*r);
    FaultInjection::arm(InjectOp::FileReadDelay, 200, 1, 4 * kPage, 4 * kPage + 1);
    FaultInjection::arm(InjectOp::FileRead, EIO, 1, 4 * kPage, 4 * kPage + 1);
    const auto start = Clock::now();
    EXPECT_EQ(touch(p + 5 * kPage), SIGBUS);
    EXPECT_GE(since(start), 150);
    std::vector<char> got;
    ASSERT_EQ(copy_out(p + 8 * kPage, 8 * kPage, got), 0);
    EXPECT_EQ(wrong_bytes(got, f.contents(), 8 * kPage), 0u);
}

TEST_P(FileReads, UnmapAndDestructionWithASlowCompletionInFlight)
{
    TempFile f(64 * kPage, 111);
    for (bool destroy : { false, true }) {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
        auto r = rt->map_file(f.fd(), four_page_reads(64));
        ASSERT_TRUE(r);
        const char* p = static_cast<const char*>(*r);
        FaultInjection::arm(InjectOp::FileReadDelay, 300, 1, 40 * kPage, 40 * kPage + 1);
        char c = 0;
        int sig = -1;
        std::thread t([&] { sig = guarded_access([&] { c = *static_cast<const volatile char*>(p + 41 * kPage); }); });
        EXPECT_TRUE(wait_taken(InjectOp::FileReadDelay, 1));
        // Both wait for the parked fault, whose page arrives late; the
        // thread then has its byte, or (its retry lost the race with the
        // unmap) SIGSEGV — never a wrong byte, a hang or a freed cache.
        if (destroy)
            rt.reset();
        else
            EXPECT_TRUE(rt->unmap(*r, 64 * kPage));
        t.join();
        EXPECT_TRUE(sig == SIGSEGV || (sig == 0 && c == f.contents()[41 * kPage])) << "signal " << sig;
        FaultInjection::disarm_all();
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, FileReads, ::testing::Values("", "minor", "io_uring"),
    [](const auto& info) { return std::string(*info.param ? info.param : "zero_copy"); });

// ---------------------------------------------------------- file write-back

// Asynchronous tracking, write-protect faults, none (every cached page is
// written), copy mode.
class WriteBack : public InjectedP<const char*> {
protected:
    bool tracked(Runtime& rt) const { return rt.has_feature("wp_shmem") && rt.has_feature("minor"); }
};

// What a test writes over `original`: never the same byte.
char written(char original, int round) { return char(original ^ (round == 1 ? 0x5A : 0xA5)); }

TEST_P(WriteBack, ENOSPCThenEIOKeepThePagesDirtyAndALaterSyncWritesThem)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    // 600 pages: three write-back runs (256 pages each at most).
    constexpr size_t kPages = 600;
    TempFile f(kPages * kPage, 113);
    int rw = f.open_again(O_RDWR);
    ASSERT_GE(rw, 0);
    auto r = rt->map_file(rw, { .length = kPages * kPage, .access = Access::ReadWrite });
    close(rw);
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    auto at = [](size_t page) { return page * kPage + page % kPage; };
    auto value = [&](size_t page, int round) { return written(f.contents()[at(page)], round); };
    auto on_disk = [&](const std::vector<char>& back, size_t page, int round) { return back[at(page)] == value(page, round); };
    for (size_t page = 0; page < kPages; ++page)
        p[at(page)] = value(page, 1);
    // The middle run (pages 256..511) fails with ENOSPC: the others land.
    FaultInjection::arm(InjectOp::FileWrite, ENOSPC, 1, 256 * kPage, 256 * kPage + 1);
    auto s = rt->sync(p, kPages * kPage);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), ENOSPC);
    EXPECT_EQ(FaultInjection::taken(InjectOp::FileWrite), 1);
    size_t landed = 0, held = 0;
    auto back = f.read_back();
    for (size_t page = 0; page < kPages; ++page)
        (page >= 256 && page < 512 ? held : landed) += on_disk(back, page, 1);
    EXPECT_EQ(landed, kPages - 256);
    EXPECT_EQ(held, 0u) << "a failed run must not reach the file";
    if (tracked(*rt)) {
        EXPECT_EQ(rt->region_stats(p)->dirty_pages, 256u) << "exactly the failed run stays dirty";
    }
    // The pages still hold what was written.
    for (size_t page = 256; page < 512; ++page)
        ASSERT_EQ(p[at(page)], value(page, 1));
    // Every write fails now (EIO), also for pages written again meanwhile.
    p[at(5)] = value(5, 2);
    FaultInjection::arm(InjectOp::FileWrite, EIO, 1000);
    s = rt->sync(p, kPages * kPage, SyncFlags::Async);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), EIO);
    back = f.read_back();
    EXPECT_FALSE(on_disk(back, 300, 1));
    EXPECT_FALSE(on_disk(back, 5, 2));
    // The device recovers: one sync writes everything that was held.
    FaultInjection::disarm_all();
    ASSERT_TRUE(rt->sync(p, kPages * kPage));
    back = f.read_back();
    ASSERT_EQ(back.size(), kPages * kPage) << "write-back never changes the size";
    size_t bad = 0;
    for (size_t page = 0; page < kPages; ++page)
        bad += !on_disk(back, page, page == 5 ? 2 : 1);
    EXPECT_EQ(bad, 0u);
    if (tracked(*rt)) {
        EXPECT_EQ(rt->region_stats(p)->dirty_pages, 0u);
    }
}

TEST_P(WriteBack, AFailedWriteBackAtUnmapLosesNothing)
{
    TempFile f(32 * kPage, 115);
    {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
        int rw = f.open_again(O_RDWR);
        ASSERT_GE(rw, 0);
        auto r = rt->map_file(rw, { .length = 32 * kPage, .access = Access::ReadWrite });
        ASSERT_TRUE(r) << r.error().message();
        char* p = static_cast<char*>(*r);
        for (size_t page = 0; page < 32; ++page)
            p[page * kPage] = written(f.contents()[page * kPage], 1);
        // The unmap's write-back fails: unmap succeeds (as munmap(2) does),
        // but the written pages must survive it somewhere.
        FaultInjection::arm(InjectOp::FileWrite, EIO, 1000);
        ASSERT_TRUE(rt->unmap(p, 32 * kPage));
        FaultInjection::disarm_all();
        EXPECT_EQ(f.read_back()[3 * kPage], f.contents()[3 * kPage]);
        // A new region of the file sees what was written, and its sync
        // writes it.
        auto again = rt->map_file(rw, { .length = 16 * kPage, .access = Access::ReadWrite });
        close(rw);
        ASSERT_TRUE(again);
        const char* q = static_cast<const char*>(*again);
        size_t bad = 0;
        for (size_t page = 0; page < 16; ++page)
            bad += q[page * kPage] != written(f.contents()[page * kPage], 1);
        EXPECT_EQ(bad, 0u) << "the written pages were dropped with the unmapped region";
        ASSERT_TRUE(rt->sync(*again, 16 * kPage));
        EXPECT_EQ(f.read_back()[3 * kPage], written(f.contents()[3 * kPage], 1));
        // Pages 16..31 are no region's now: destruction writes them.
    }
    const auto back = f.read_back();
    size_t bad = 0;
    for (size_t page = 0; page < 32; ++page)
        bad += back[page * kPage] != written(f.contents()[page * kPage], 1);
    EXPECT_EQ(bad, 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, WriteBack, ::testing::Values("", "wp_async", "wp_shmem", "minor"),
    [](const auto& info) { return std::string(*info.param ? info.param : "tracked"); });

// ------------------------------------------------------------------- stores

char pattern(uint64_t offset) { return char((offset * 2654435761u) >> 13); }

// A store in memory; counts the calls that reach it.
class CountingStore : public Store {
public:
    explicit CountingStore(size_t size)
        : bytes_(size)
    {
        for (size_t i = 0; i < size; ++i)
            bytes_[i] = pattern(i);
    }
    uint64_t size() noexcept override { return bytes_.size(); }
    bool writable() const noexcept override { return true; }
    int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        reads.fetch_add(1);
        std::lock_guard g(lock_);
        if (offset >= bytes_.size())
            return 0;
        const size_t n = std::min<size_t>(bytes, bytes_.size() - offset);
        memcpy(buffer, bytes_.data() + offset, n);
        return int64_t(n);
    }
    int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        writes.fetch_add(1);
        std::lock_guard g(lock_);
        memcpy(bytes_.data() + offset, buffer, bytes);
        return int64_t(bytes);
    }
    char at(size_t offset)
    {
        std::lock_guard g(lock_);
        return bytes_[offset];
    }
    std::vector<char> all()
    {
        std::lock_guard g(lock_);
        return bytes_;
    }
    std::atomic<int> reads { 0 }, writes { 0 };

private:
    std::mutex lock_;
    std::vector<char> bytes_;
};

StoreMapOptions store_reads(size_t pages, unsigned read_pages, Access access = Access::Read)
{
    return { .length = pages * kPage, .access = access, .readahead_min_pages = read_pages, .readahead_max_pages = read_pages };
}

// The store's bytes at [offset, offset+len) as the region shows them.
size_t wrong_store_bytes(const std::vector<char>& got, size_t offset)
{
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i)
        bad += got[i] != pattern(offset + i);
    return bad;
}

using StoreIo = Injected;

TEST_F(StoreIo, AFailedReadIsSigbusInTheFaultingThreadAndNeverCallsTheStore)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    auto bad = std::make_shared<CountingStore>(16 * kPage);
    auto good = std::make_shared<CountingStore>(16 * kPage);
    auto rb = rt->map_store(bad, store_reads(16, 1));
    auto rg = rt->map_store(good, store_reads(16, 1, Access::Read));
    ASSERT_TRUE(rb && rg);
    // Only the read of bad's page 3 (good's page 3 is never read: it is
    // read first, before arming).
    std::vector<char> got;
    ASSERT_EQ(copy_out(static_cast<const char*>(*rg) + 3 * kPage, kPage, got), 0);
    FaultInjection::arm(InjectOp::StoreRead, EIO, 1, 3 * kPage, 3 * kPage + 1);
    const char* pb = static_cast<const char*>(*rb);
    int sig = 0;
    std::thread t([&] { sig = touch(pb + 3 * kPage); });
    EXPECT_EQ(copy_out(static_cast<const char*>(*rg), 16 * kPage, got), 0);
    EXPECT_EQ(wrong_store_bytes(got, 0), 0u);
    t.join();
    EXPECT_EQ(sig, SIGBUS);
    EXPECT_EQ(bad->reads.load(), 0) << "an injected failure never reaches the store";
    EXPECT_GE(rt->region_stats(pb)->file_read_errors, 1u);
    ASSERT_EQ(copy_out(pb + 4 * kPage, 12 * kPage, got), 0);
    EXPECT_EQ(wrong_store_bytes(got, 4 * kPage), 0u);
    // As for a file: SIGBUS in this region until it is unmapped; another
    // region of the store reads the page again.
    EXPECT_EQ(touch(pb + 3 * kPage), SIGBUS);
    auto again = rt->map_store(bad, store_reads(16, 1));
    ASSERT_TRUE(again);
    ASSERT_EQ(copy_out(static_cast<const char*>(*again) + 3 * kPage, kPage, got), 0);
    EXPECT_EQ(wrong_store_bytes(got, 3 * kPage), 0u);
}

TEST_F(StoreIo, AShortReadIsSigbusForThePagesItMissedNeverZeros)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    auto store = std::make_shared<CountingStore>(64 * kPage);
    auto r = rt->map_store(store, store_reads(64, kRead));
    ASSERT_TRUE(r);
    const char* p = static_cast<const char*>(*r);
    // One byte short, the faulting page last of [8, 12): SIGBUS there ...
    FaultInjection::arm(InjectOp::StoreReadShort, 1, 1, 8 * kPage, 8 * kPage + 1);
    EXPECT_EQ(touch(p + 11 * kPage), SIGBUS);
    EXPECT_EQ(FaultInjection::taken(InjectOp::StoreReadShort), 1);
    std::vector<char> got;
    ASSERT_EQ(copy_out(p + 8 * kPage, 3 * kPage, got), 0);
    EXPECT_EQ(wrong_store_bytes(got, 8 * kPage), 0u) << "... the whole pages before it are the store's";
    // A page and a half of [16, 20), the faulting page first: it is served,
    // the rest read again.
    FaultInjection::arm(InjectOp::StoreReadShort, int(2 * kPage + kPage / 2), 1, 16 * kPage, 16 * kPage + 1);
    ASSERT_EQ(copy_out(p + 16 * kPage, 4 * kPage, got), 0);
    EXPECT_EQ(FaultInjection::taken(InjectOp::StoreReadShort), 1);
    EXPECT_EQ(wrong_store_bytes(got, 16 * kPage), 0u);
    // Nothing at all, inside the store.
    FaultInjection::arm(InjectOp::StoreReadShort, INT_MAX, 1, 24 * kPage, 24 * kPage + 1);
    EXPECT_EQ(touch(p + 24 * kPage), SIGBUS);
    EXPECT_GE(rt->region_stats(p)->file_read_errors, 3u);
}

TEST_F(StoreIo, ASlowCompletionHoldsNeitherAHandlerNorTheStoreThread)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .handler_threads = 1 });
    auto store = std::make_shared<CountingStore>(16 * kPage);
    // One store thread: were it waiting for the slow completion, the second
    // read below could not start.
    auto r = rt->map_store(store, { .length = 16 * kPage, .readahead_min_pages = 1, .readahead_max_pages = 1, .threads = 1 });
    auto anon = rt->map_anonymous({ .size = 16 * kPage });
    ASSERT_TRUE(r && anon);
    const char* p = static_cast<const char*>(*r);
    constexpr long kDelay = 400;
    FaultInjection::arm(InjectOp::StoreReadDelay, int(kDelay), 1, 0, 1);
    const auto start = Clock::now();
    std::atomic<bool> done { false };
    char c = 0;
    std::thread t([&] {
        c = *static_cast<const volatile char*>(p + 100);
        done = true;
    });
    EXPECT_TRUE(wait_taken(InjectOp::StoreReadDelay, 1));
    const auto served = Clock::now();
    std::vector<char> got;
    EXPECT_EQ(copy_out(p + 8 * kPage, 8 * kPage, got), 0);
    EXPECT_EQ(wrong_store_bytes(got, 8 * kPage), 0u);
    memset(*anon, 1, 16 * kPage);
    EXPECT_LT(since(served), kDelay / 2);
    EXPECT_FALSE(done.load());
    t.join();
    EXPECT_GE(since(start), kDelay - 50);
    EXPECT_EQ(c, pattern(100));
}

TEST_F(StoreIo, FailedStoreWritesKeepThePagesUntilASyncSucceeds)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config {});
    auto store = std::make_shared<CountingStore>(16 * kPage);
    auto r = rt->map_store(store, store_reads(16, 1, Access::ReadWrite));
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    auto value = [](size_t page) { return written(pattern(page * kPage + 1), 1); };
    for (size_t page = 0; page < 16; ++page)
        p[page * kPage + 1] = value(page);
    for (int error : { ENOSPC, EIO }) {
        FaultInjection::arm(InjectOp::StoreWrite, error, 1000);
        auto s = rt->sync(p, 16 * kPage);
        ASSERT_FALSE(s);
        EXPECT_EQ(s.error().code(), error);
        EXPECT_EQ(store->writes.load(), 0) << "an injected failure never reaches the store";
        EXPECT_GE(rt->region_stats(p)->dirty_pages, 16u);
        EXPECT_EQ(store->at(3 * kPage + 1), pattern(3 * kPage + 1));
    }
    // The unmap's write-back fails too; the pages must not go with it.
    FaultInjection::arm(InjectOp::StoreWrite, EIO, 1000);
    ASSERT_TRUE(rt->unmap(p, 16 * kPage));
    FaultInjection::disarm_all();
    auto again = rt->map_store(store, store_reads(16, 1, Access::ReadWrite));
    ASSERT_TRUE(again);
    EXPECT_EQ(static_cast<char*>(*again)[3 * kPage + 1], value(3)) << "the written pages were dropped with the region";
    ASSERT_TRUE(rt->sync(*again, 16 * kPage));
    for (size_t page = 0; page < 16; ++page)
        ASSERT_EQ(store->at(page * kPage + 1), value(page)) << "page " << page;
}

// ------------------------------------------------ eviction under a budget

class EvictionWriteBack : public InjectedP<bool> {}; // a store (true) or a file

TEST_P(EvictionWriteBack, FailedWriteBacksKeepThePagesResidentAndDirty)
{
    constexpr unsigned kBatch = 16;
    constexpr size_t kBudget = 64, kPages = 256;
    Config c;
    c.memory_budget = kBudget * kPage;
    c.eviction_batch_pages = kBatch;
    FAULTLINE_RUNTIME_OR_SKIP(rt, c);
    if (!rt->has_feature("wp_shmem") || !rt->has_feature("minor"))
        GTEST_SKIP() << "evicting written pages needs write-protect and minor faults on shared memory";
    const bool store_backed = GetParam();
    TempFile f(kPages * kPage, 117);
    auto store = std::make_shared<CountingStore>(kPages * kPage);
    int rw = f.open_again(O_RDWR);
    ASSERT_GE(rw, 0);
    auto r = store_backed ? rt->map_store(store, { .length = kPages * kPage, .access = Access::ReadWrite })
                          : rt->map_file(rw, { .length = kPages * kPage, .access = Access::ReadWrite });
    close(rw);
    ASSERT_TRUE(r) << r.error().message();
    char* p = static_cast<char*>(*r);
    auto stored = [&] { return store_backed ? store->all() : f.read_back(); };
    auto at = [](size_t page) { return page * kPage + page % 64; };
    auto value = [&](size_t page) { return written(store_backed ? pattern(at(page)) : f.contents()[at(page)], 1); };
    // Every write-back fails; four times the budget is written.
    FaultInjection::arm(store_backed ? InjectOp::StoreWrite : InjectOp::FileWrite, EIO, INT_MAX);
    for (size_t page = 0; page < kPages; ++page)
        p[at(page)] = value(page);
    RuntimeStats st = rt->stats();
    EXPECT_GT(st.eviction_write_errors, 0u) << "the evictor tried";
    EXPECT_EQ(st.evictions_dirty, 0u);
    auto rs = rt->region_stats(p);
    EXPECT_EQ(rs->dirty_pages, kPages) << "no dirty page was dropped";
    EXPECT_EQ(rs->cached_pages, kPages) << "every page stays resident (the budget overruns)";
    EXPECT_GT(st.budget_overruns, 0u) << "and the overrun is counted";
    size_t bad = 0;
    for (size_t page = 0; page < kPages; ++page)
        bad += p[at(page)] != value(page);
    EXPECT_EQ(bad, 0u);
    // Sync fails the same way ...
    auto s = rt->sync(p, kPages * kPage);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), EIO);
    EXPECT_NE(stored()[at(7)], value(7));
    // ... until the writes work again: then every byte lands, and the
    // evictor brings the pages back under the budget.
    FaultInjection::disarm_all();
    ASSERT_TRUE(rt->sync(p, kPages * kPage));
    bad = 0;
    const auto back = stored();
    for (size_t page = 0; page < kPages; ++page)
        bad += back[at(page)] != value(page);
    EXPECT_EQ(bad, 0u);
    // (A touch wakes the evictor: a fault above the high mark.)
    const auto deadline = Clock::now() + std::chrono::seconds(1);
    while (rt->stats().budget_resident_bytes > (kBudget + kBatch) * kPage && Clock::now() < deadline) {
        (void)*static_cast<volatile char*>(p);
        std::this_thread::sleep_for(milliseconds(5));
    }
    EXPECT_LE(rt->stats().budget_resident_bytes, (kBudget + kBatch) * kPage);
    bad = 0;
    for (size_t page = 0; page < kPages; ++page)
        bad += p[at(page)] != value(page);
    EXPECT_EQ(bad, 0u);
}

INSTANTIATE_TEST_SUITE_P(Backing, EvictionWriteBack, ::testing::Values(false, true),
    [](const auto& info) { return std::string(info.param ? "store" : "file"); });

} // namespace
} // namespace faultline::testing
