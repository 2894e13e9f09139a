// File regions against real files (issue: file regions): bytes through
// shared and private regions at several offsets, shared regions seeing each
// other, private writes never reaching the file, SIGBUS past the end, a
// short last page, truncation, read errors, many threads, and bad input.
#include "os/fault_injection.h"
#include "support/guarded_access.h"
#include "support/temp_file.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

size_t round_up(size_t n) { return (n + kPage - 1) / kPage * kPage; }

// Every byte of [at, at+len) of the mapping equals the file's from `offset`,
// and bytes past the file's end (in its last page) read zero.
void expect_file_bytes(const char* p, const TempFile& f, size_t offset, size_t len)
{
    const auto& c = f.contents();
    size_t bad = 0, first_bad = SIZE_MAX;
    for (size_t i = 0; i < len; ++i) {
        char want = offset + i < c.size() ? c[offset + i] : 0;
        if (p[i] != want && bad++ == 0)
            first_bad = i;
    }
    EXPECT_EQ(bad, 0u) << "first wrong byte at offset " << offset + first_bad;
}

class FileRegion : public ::testing::TestWithParam<const char*> {};

TEST_P(FileRegion, BytesThroughSharedAndPrivateRegionsAtSeveralOffsets)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(3 * 1024 * 1024 + 777, 5);
    for (Sharing sharing : { Sharing::Shared, Sharing::Private }) {
        for (size_t offset : { size_t(0), 4 * kPage, 513 * kPage }) {
            const size_t len = f.size() - offset;
            auto r = rt->map_file(f.fd(), { .length = len, .offset = int64_t(offset), .sharing = sharing });
            ASSERT_TRUE(r) << r.error().message();
            const char* p = static_cast<const char*>(*r);
            // Backwards first (no readahead stream), then forwards.
            for (size_t page = round_up(len) / kPage; page-- > 0;)
                ASSERT_EQ(p[page * kPage], offset + page * kPage < f.size() ? f.contents()[offset + page * kPage] : 0);
            expect_file_bytes(p, f, offset, round_up(len));
            auto st = rt->region_stats(*r);
            ASSERT_TRUE(st);
            // (Without minor faults a page already cached is mapped by the
            // kernel without a fault, so only the file's count is certain.)
            EXPECT_GE(st->file_bytes_read, f.size() - offset);
            EXPECT_STREQ(st->object_kind, sharing == Sharing::Shared ? "file-shared" : "file-private");
            ASSERT_TRUE(rt->unmap(*r, round_up(len)));
        }
    }
}

TEST_P(FileRegion, SharedRegionsOfOneFileSeeEachOthersWrites)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(64 * kPage, 7);
    int rw = f.open_again(O_RDWR);
    ASSERT_GE(rw, 0);
    auto a = rt->map_file(rw, { .length = 64 * kPage, .access = Access::ReadWrite });
    auto b = rt->map_file(rw, { .length = 32 * kPage, .offset = int64_t(16 * kPage), .access = Access::ReadWrite });
    ASSERT_TRUE(a && b) << (a ? b.error().message() : a.error().message());
    close(rw); // the runtime keeps its own descriptor
    auto* pa = static_cast<volatile char*>(*a);
    auto* pb = static_cast<volatile char*>(*b);
    // A write through one is seen through the other at once, both ways,
    // including on pages the other had not touched yet.
    pa[20 * kPage + 3] = 'A';
    EXPECT_EQ(pb[4 * kPage + 3], 'A');
    (void)pb[10 * kPage];
    pb[10 * kPage + 9] = 'B';
    EXPECT_EQ(pa[26 * kPage + 9], 'B');
    // A third region mapped later sees both.
    auto c = rt->map_file(f.path().c_str(), { .length = 64 * kPage });
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(static_cast<volatile char*>(*c)[20 * kPage + 3], 'A');
    EXPECT_EQ(static_cast<volatile char*>(*c)[26 * kPage + 9], 'B');
}

TEST_P(FileRegion, PrivateWritesNeverReachTheFile)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(16 * kPage, 9);
    auto shared = rt->map_file(f.path().c_str(), { .length = 16 * kPage });
    auto priv = rt->map_file(f.fd(), { .length = 16 * kPage, .access = Access::ReadWrite, .sharing = Sharing::Private });
    ASSERT_TRUE(shared && priv);
    auto* p = static_cast<volatile char*>(*priv);
    (void)p[0];
    p[1] = char(~f.contents()[1]);
    p[5 * kPage] = char(~f.contents()[5 * kPage]); // a page never read before
    EXPECT_EQ(p[1], char(~f.contents()[1]));
    EXPECT_EQ(static_cast<volatile char*>(*shared)[1], f.contents()[1]) << "a shared region of the file saw a private write";
    EXPECT_TRUE(rt->sync(*shared, 16 * kPage, SyncFlags::Sync));
    ASSERT_TRUE(rt->unmap(*priv, 16 * kPage));
    ASSERT_TRUE(rt->unmap(*shared, 16 * kPage));
    rt.reset();
    EXPECT_EQ(f.read_back(), f.contents()) << "a private write reached the file";
}

TEST_P(FileRegion, PastTheEndIsSigbusAndTheLastPageEndsInZeros)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(2 * kPage + 100, 11);
    auto r = rt->map_file(f.fd(), { .length = 8 * kPage });
    ASSERT_TRUE(r) << r.error().message();
    const char* p = static_cast<const char*>(*r);
    expect_file_bytes(p, f, 0, 3 * kPage);
    int sig = guarded_access([&] { (void)*static_cast<const volatile char*>(p + 3 * kPage); });
    EXPECT_EQ(sig, SIGBUS) << "touching a page wholly past the end of the file";
    sig = guarded_access([&] { (void)*static_cast<const volatile char*>(p + 7 * kPage + 5); });
    EXPECT_EQ(sig, SIGBUS);
    // The service goes on for everything else.
    expect_file_bytes(p, f, 0, 3 * kPage);
}

TEST_P(FileRegion, TruncatedWhileMappedIsSigbusOnTheNextFault)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(16 * kPage, 13);
    auto r = rt->map_file(f.fd(), { .length = 16 * kPage, .readahead_max_pages = 1 });
    ASSERT_TRUE(r);
    const char* p = static_cast<const char*>(*r);
    expect_file_bytes(p, f, 0, kPage);
    ASSERT_EQ(ftruncate(f.fd(), off_t(4 * kPage)), 0);
    int sig = guarded_access([&] { (void)*static_cast<const volatile char*>(p + 10 * kPage); });
    EXPECT_EQ(sig, SIGBUS);
    EXPECT_EQ(guarded_access([&] { (void)*static_cast<const volatile char*>(p + 2 * kPage); }), 0) << "inside the new end";
}

TEST_P(FileRegion, ReadErrorIsSigbusForThatThreadOnly)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(64 * kPage, 17);
    TempFile other(64 * kPage, 19);
    auto r = rt->map_file(f.fd(), { .length = 64 * kPage, .readahead_max_pages = 1 });
    auto o = rt->map_file(other.fd(), { .length = 64 * kPage });
    ASSERT_TRUE(r && o);
    const char* p = static_cast<const char*>(*r);
    os::FaultInjection::arm(os::InjectOp::FileRead, EIO, 1, 10 * kPage, 11 * kPage);
    std::atomic<bool> stop { false };
    std::atomic<int> other_bad { 0 };
    std::thread reader([&] {
        for (int round = 0; !stop.load(); ++round)
            for (size_t i = 0; i < 64; ++i)
                if (static_cast<const volatile char*>(*o)[i * kPage] != other.contents()[i * kPage])
                    other_bad.fetch_add(1);
    });
    int sig = guarded_access([&] { (void)*static_cast<const volatile char*>(p + 10 * kPage); });
    stop.store(true);
    reader.join();
    os::FaultInjection::disarm_all();
    EXPECT_EQ(sig, SIGBUS);
    EXPECT_EQ(other_bad.load(), 0);
    EXPECT_GE(rt->region_stats(*r)->file_read_errors, 1u);
    // The page stays poisoned in that region (as a page whose memory failed
    // would): it keeps raising SIGBUS there, never a wrong byte ...
    EXPECT_EQ(guarded_access([&] { (void)*static_cast<const volatile char*>(p + 10 * kPage); }), SIGBUS);
    // ... while the file's cache read nothing wrong: another region of the
    // file reads the page again, now successfully.
    auto again = rt->map_file(f.fd(), { .length = 64 * kPage });
    ASSERT_TRUE(again);
    EXPECT_EQ(guarded_access([&] { expect_file_bytes(static_cast<const char*>(*again) + 10 * kPage, f, 10 * kPage, kPage); }), 0);
}

TEST_P(FileRegion, SixteenThreadsOnTheSameAndOnRandomPages)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(1024 * kPage, 23);
    auto r = rt->map_file(f.fd(), { .length = 1024 * kPage });
    ASSERT_TRUE(r);
    const char* p = static_cast<const char*>(*r);
    std::atomic<int> bad { 0 };
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t)
        threads.emplace_back([&, t] {
            std::mt19937 rng { unsigned(t) };
            for (int i = 0; i < 400; ++i) {
                size_t page = i % 4 == 0 ? 500 : rng() % 1024;
                size_t off = page * kPage + rng() % kPage;
                if (static_cast<const volatile char*>(p)[off] != f.contents()[off])
                    bad.fetch_add(1);
            }
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(bad.load(), 0);
    // Concurrent faults on one page cause one read of it.
    auto st = rt->region_stats(*r);
    EXPECT_LE(st->file_bytes_read, 1024 * kPage) << "a page was read twice";
}

TEST_P(FileRegion, SequentialReadsGrowTheirReadaheadRandomOnesReadWhatTheyFault)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(4096 * kPage, 31);
    auto seq = rt->map_file(f.fd(), { .length = 4096 * kPage });
    ASSERT_TRUE(seq);
    const char* p = static_cast<const char*>(*seq);
    for (size_t i = 0; i < 4096; ++i)
        ASSERT_EQ(static_cast<const volatile char*>(p)[i * kPage + 11], f.contents()[i * kPage + 11]) << "page " << i;
    auto st = rt->region_stats(*seq);
    ASSERT_TRUE(st);
    // Windows grow to 256 pages and the next one is read while the reader
    // works through the current one: a few dozen faults for 4,096 pages
    // (one per page without readahead), most pages read ahead and used.
    // (Copy mode reads at most 16 pages at a time: 256 reads.)
    EXPECT_LT(st->inode_faults, rt->has_feature("minor") ? 200u : 4096u / 16 + 16);
    EXPECT_GT(st->readahead_pages, 3000u);
    // Use is seen where the runtime maps pages itself (minor faults); in
    // copy mode the kernel maps cached pages without telling anyone.
    if (rt->has_feature("minor")) {
        EXPECT_GT(st->readahead_used, 3000u);
    }
    EXPECT_EQ(st->file_bytes_read, 4096 * kPage) << "every page read exactly once";
    ASSERT_TRUE(rt->unmap(*seq, 4096 * kPage));

    // Random pages of another file: each fault reads its own page, nothing
    // more (readahead_min_pages is 1 by default).
    TempFile g(4096 * kPage, 37);
    auto rnd = rt->map_file(g.fd(), { .length = 4096 * kPage });
    ASSERT_TRUE(rnd);
    std::mt19937 rng { 5 };
    size_t touched = 0;
    for (int i = 0; i < 100; ++i) {
        size_t page = (rng() % 512) * 8; // never two neighbours: no stream
        touched += static_cast<const volatile char*>(*rnd)[page * kPage] == g.contents()[page * kPage];
    }
    EXPECT_EQ(touched, 100u);
    st = rt->region_stats(*rnd);
    EXPECT_LE(st->file_bytes_read, 100 * kPage);
    EXPECT_EQ(st->readahead_pages, 0u);
}

TEST_P(FileRegion, DirectIoReadsTheFile)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(300 * kPage + 17, 41);
    auto r = rt->map_file(f.fd(), { .length = f.size(), .direct_io = true });
    if (!r && r.error().code() == EINVAL)
        GTEST_SKIP() << "this file system refuses O_DIRECT: " << r.error().message();
    ASSERT_TRUE(r) << r.error().message();
    expect_file_bytes(static_cast<const char*>(*r), f, 0, round_up(f.size()));
    EXPECT_GE(rt->region_stats(*r)->file_bytes_read, f.size());
}

TEST_P(FileRegion, UnmapWhileReadsAreInFlight)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    TempFile f(4096 * kPage, 29);
    for (int round = 0; round < 10; ++round) {
        auto r = rt->map_file(f.fd(), { .length = 4096 * kPage });
        ASSERT_TRUE(r);
        const char* p = static_cast<const char*>(*r);
        std::vector<std::thread> threads;
        std::atomic<int> wrong { 0 };
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&, t] {
                for (size_t page = size_t(t); page < 4096; page += 37) {
                    char got = 0;
                    int sig = guarded_access([&] { got = static_cast<const volatile char*>(p)[page * kPage]; });
                    if (sig == SIGSEGV)
                        return; // unmapped under us: as after munmap(2)
                    if (sig != 0 || got != f.contents()[page * kPage])
                        wrong.fetch_add(1);
                }
            });
        std::this_thread::sleep_for(std::chrono::microseconds(200 * round));
        ASSERT_TRUE(rt->unmap(*r, 4096 * kPage));
        for (auto& t : threads)
            t.join();
        EXPECT_EQ(wrong.load(), 0) << "round " << round;
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, FileRegion,
    // Zero-copy (minor faults), copy mode (no minor faults), and without
    // io_uring (the I/O worker).
    ::testing::Values("", "minor", "io_uring"),
    [](const auto& info) { return std::string(*info.param ? info.param : "default"); });

// --- bad input --------------------------------------------------------------

class FileRegionInput : public ::testing::Test {
protected:
    int map_errno(int fd, FileMapOptions o)
    {
        auto r = rt_->map_file(fd, o);
        if (r) {
            ADD_FAILURE() << "mapped";
            return 0;
        }
        return r.error().code();
    }
    void SetUp() override
    {
        auto rt = Runtime::create({});
        if (!rt)
            GTEST_SKIP() << "userfaultfd unavailable: " << rt.error().message();
        rt_ = std::move(*rt);
    }
    std::unique_ptr<Runtime> rt_;
};

TEST_F(FileRegionInput, DescriptorsThatCannotBeMapped)
{
    TempFile f(4 * kPage);
    EXPECT_EQ(map_errno(-1, { .length = kPage }), EBADF);
    int closed = f.open_again(O_RDONLY);
    close(closed);
    EXPECT_EQ(map_errno(closed, { .length = kPage }), EBADF);
    int path_only = f.open_again(O_PATH);
    EXPECT_EQ(map_errno(path_only, { .length = kPage }), EBADF);
    close(path_only);
    int dir = ::open("/", O_RDONLY | O_DIRECTORY);
    EXPECT_EQ(map_errno(dir, { .length = kPage }), ENODEV);
    close(dir);
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    EXPECT_EQ(map_errno(pipefd[0], { .length = kPage }), ENODEV);
    close(pipefd[0]);
    close(pipefd[1]);
    int sock = socket(AF_UNIX, SOCK_STREAM, 0);
    EXPECT_EQ(map_errno(sock, { .length = kPage }), ENODEV);
    close(sock);
    int wronly = f.open_again(O_WRONLY);
    EXPECT_EQ(map_errno(wronly, { .length = kPage }), EACCES);
    close(wronly);
}

TEST_F(FileRegionInput, AccessBeyondTheDescriptor)
{
    TempFile f(4 * kPage);
    int ro = f.open_again(O_RDONLY);
    EXPECT_EQ(map_errno(ro, { .length = kPage, .access = Access::ReadWrite }), EACCES);
    // A private copy may be written through a read-only descriptor.
    auto priv = rt_->map_file(ro, { .length = kPage, .access = Access::ReadWrite, .sharing = Sharing::Private });
    EXPECT_TRUE(priv) << priv.error().message();
    // A read-only shared region can never be made writable.
    auto shared = rt_->map_file(ro, { .length = kPage });
    ASSERT_TRUE(shared);
    auto p = rt_->protect(*shared, kPage, Access::ReadWrite);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), EACCES);
    close(ro);
    int append = f.open_again(O_RDWR | O_APPEND);
    EXPECT_EQ(map_errno(append, { .length = kPage, .access = Access::ReadWrite }), EACCES);
    close(append);
}

TEST_F(FileRegionInput, OffsetsAndLengths)
{
    TempFile f(4 * kPage);
    EXPECT_EQ(map_errno(f.fd(), { .length = 0 }), EINVAL);
    EXPECT_EQ(map_errno(f.fd(), { .length = kPage, .offset = 100 }), EINVAL);
    EXPECT_EQ(map_errno(f.fd(), { .length = kPage, .offset = -int64_t(kPage) }), EINVAL);
    EXPECT_EQ(map_errno(f.fd(), { .length = SIZE_MAX - 10 }), EOVERFLOW);
    EXPECT_EQ(map_errno(f.fd(), { .length = 2 * kPage, .offset = int64_t(INT64_MAX / int64_t(kPage) * int64_t(kPage)) }), EOVERFLOW);
    EXPECT_EQ(map_errno(f.fd(), { .length = kPage, .access = Access(0x10) }), EINVAL);
    EXPECT_EQ(map_errno(f.fd(), { .length = kPage, .sharing = Sharing(7) }), EINVAL);
    EXPECT_EQ(map_errno(f.fd(), { .length = kPage, .readahead_min_pages = 8, .readahead_max_pages = 4 }), EINVAL);
    // Past the end of the file is allowed (touching there is SIGBUS).
    auto r = rt_->map_file(f.fd(), { .length = 100 * kPage, .offset = int64_t(50 * kPage) });
    EXPECT_TRUE(r) << r.error().message();
    // Nothing leaked from the refusals.
    EXPECT_EQ(rt_->regions().size(), 1u);
}

TEST_F(FileRegionInput, SyncOfWhatIsNotASharedFileRegion)
{
    TempFile f(4 * kPage);
    auto anon = rt_->map_anonymous({ .size = 4 * kPage });
    ASSERT_TRUE(anon);
    auto s = rt_->sync(*anon, 4 * kPage);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), EINVAL);
    auto file = rt_->map_file(f.fd(), { .length = 4 * kPage });
    ASSERT_TRUE(file);
    EXPECT_EQ(rt_->sync(*file, 4 * kPage, SyncFlags(64)).error().code(), EINVAL);
    EXPECT_EQ(rt_->sync(*file, 4 * kPage, SyncFlags::Sync | SyncFlags::Async).error().code(), EINVAL);
    EXPECT_EQ(rt_->sync(static_cast<char*>(*file) + 1, kPage).error().code(), EINVAL);
    ASSERT_TRUE(rt_->unmap(static_cast<char*>(*file) + kPage, kPage));
    EXPECT_EQ(rt_->sync(*file, 4 * kPage).error().code(), ENOENT);
    // A private file region: nothing of it reaches the file, and sync says so
    // by doing nothing (as msync(2)).
    auto priv = rt_->map_file(f.fd(), { .length = 4 * kPage, .sharing = Sharing::Private });
    ASSERT_TRUE(priv);
    EXPECT_TRUE(rt_->sync(*priv, 4 * kPage));
}

} // namespace
} // namespace faultline::testing
