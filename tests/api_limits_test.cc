// API contract at the limits: statistics of a huge, nearly empty region cost
// what its populated pages cost and never hold up structural calls; an
// unmap refused by vm.max_map_count fails with ENOMEM and changes nothing.
#include "segv_support.h"
#include "test_support.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <sys/wait.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace faultline;
using faultline::testing::kPage;
using faultline::testing::SegvCatcher;
using faultline::testing::try_read;
using faultline::testing::try_write;

namespace {

using Clock = std::chrono::steady_clock;

// A bound that only a hang or a walk over every page of the region can
// exceed (that walk took about a minute for 16 TiB); no timing of one
// machine is asserted.
constexpr auto kBound = std::chrono::seconds(2);

template <typename Fn>
Clock::duration timed(Fn&& fn)
{
    const auto start = Clock::now();
    fn();
    return Clock::now() - start;
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The region's "page_map" string in a to_json() report, found by its name.
std::string page_map_of(const std::string& json, const std::string& name)
{
    const size_t at = json.find("\"name\":\"" + name + "\"");
    if (at == std::string::npos)
        return {};
    const std::string key = "\"page_map\":\"";
    const size_t start = json.find(key, at);
    if (start == std::string::npos)
        return {};
    const size_t end = json.find('"', start + key.size());
    return json.substr(start + key.size(), end - start - key.size());
}

} // namespace

TEST(StatisticsCost, FollowsPopulatedPagesAndBlocksNoStructuralCall)
{
    constexpr size_t kTiB = size_t(1) << 40;
    auto created = Runtime::create({ .arena_size = 32 * kTiB, .fault_around_pages = 1 });
    if (!created) {
        if (created.error().code() == ENOMEM)
            GTEST_SKIP() << "cannot reserve a 32 TiB arena here (address space, or a sanitizer's memory layout): " << created.error().message();
        GTEST_SKIP() << "userfaultfd unavailable: " << created.error().message();
    }
    std::unique_ptr<Runtime> rt = std::move(*created);
    auto r = rt->map_anonymous({ .size = 16 * kTiB, .flags = RegionFlags::NoReserve, .name = "huge" });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<char*>(*r);
    // Two private pages, half the region apart.
    const size_t far_page = (8 * kTiB) / kPage + 5;
    p[0] = 'x';
    p[far_page * kPage] = 'y';

    // Structural calls in a loop beside the statistics; each must finish
    // within the bound, whatever the statistics calls are doing.
    std::atomic<bool> stop { false };
    std::atomic<size_t> rounds { 0 };
    std::atomic<int64_t> worst_ns { 0 };
    std::atomic<int> failed { 0 };
    std::thread structural([&] {
        while (!stop.load()) {
            const auto took = timed([&] {
                auto q = rt->map_anonymous({ .size = kPage, .name = "small" });
                if (!q || !rt->unmap(*q, kPage))
                    failed.fetch_add(1);
            });
            const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(took).count();
            int64_t seen = worst_ns.load();
            while (ns > seen && !worst_ns.compare_exchange_weak(seen, ns)) {
            }
            rounds.fetch_add(1);
        }
    });
    while (rounds.load() == 0 && failed.load() == 0)
        std::this_thread::yield();

    Result<RegionStats> st = fail(EINVAL, "not measured");
    auto took = timed([&] { st = rt->region_stats(p); });
    EXPECT_LT(took, kBound) << "region_stats took " << seconds(took) << " s";
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_EQ(st->amount_resident, 2 * kPage);
    EXPECT_EQ(st->amount_dirty, 2 * kPage);
    EXPECT_EQ(st->amount_zero_mapped, 0u);

    std::vector<RegionStats> all;
    took = timed([&] { all = rt->regions(); });
    EXPECT_LT(took, kBound) << "regions() took " << seconds(took) << " s";
    auto huge = std::find_if(all.begin(), all.end(), [&](const RegionStats& s) { return s.base == uintptr_t(p); });
    ASSERT_NE(huge, all.end());
    EXPECT_EQ(huge->size, 16 * kTiB);
    EXPECT_EQ(huge->amount_resident, 2 * kPage);

    std::string json;
    took = timed([&] { json = rt->to_json(); });
    EXPECT_LT(took, kBound) << "to_json() took " << seconds(took) << " s";
    // 2^32 pages in at most 1024 characters: 2^22 pages per character, and
    // exactly the two groups holding the written pages are 'D'.
    const size_t per_char = (16 * kTiB / kPage) / 1024;
    EXPECT_NE(json.find("\"pages_per_char\":" + std::to_string(per_char)), std::string::npos);
    std::string expected(1024, '.');
    expected[0] = 'D';
    expected[far_page / per_char] = 'D';
    EXPECT_EQ(page_map_of(json, "huge"), expected);

    stop.store(true);
    structural.join();
    EXPECT_EQ(failed.load(), 0);
    EXPECT_GT(rounds.load(), 0u);
    EXPECT_LT(std::chrono::nanoseconds(worst_ns.load()), kBound)
        << "a map/unmap pair waited " << worst_ns.load() / 1e9 << " s behind the statistics";

    Result<void> unmapped = fail(EINVAL, "not unmapped");
    took = timed([&] { unmapped = rt->unmap(p, 16 * kTiB); });
    EXPECT_TRUE(unmapped) << unmapped.error().message();
    EXPECT_LT(took, kBound) << "unmapping 16 TiB with two pages took " << seconds(took) << " s";
    EXPECT_EQ(rt->stats().region_count, 0u);
}

namespace {

// Sets vm.max_map_count for the scope and restores the old value on every
// way out, ASSERT failures included: the limit is system-wide. A crash while
// it is low would skip the destructor, so a guardian process, forked before
// the limit drops, restores it if this process dies first.
class MaxMapCount {
public:
    static constexpr const char* kPath = "/proc/sys/vm/max_map_count";
    MaxMapCount()
    {
        std::ifstream in(kPath);
        readable_ = bool(in >> original_);
        original_len_ = size_t(snprintf(original_text_, sizeof original_text_, "%ld\n", original_));
    }
    ~MaxMapCount() { restore(); }
    MaxMapCount(const MaxMapCount&) = delete;
    MaxMapCount& operator=(const MaxMapCount&) = delete;

    bool readable() const { return readable_; }
    long original() const { return original_; }
    // Returns 0 or the errno of the failed write.
    int set(long value)
    {
        start_guardian();
        char text[32];
        const int rc = write_text(text, size_t(snprintf(text, sizeof text, "%ld\n", value)));
        if (rc == 0)
            changed_ = true;
        else
            stop_guardian();
        return rc;
    }
    void restore()
    {
        if (changed_ && write_text(original_text_, original_len_) == 0)
            changed_ = false;
        if (!changed_)
            stop_guardian();
    }

private:
    // Only system calls here: the guardian runs it in a fork child.
    static int write_text(const char* text, size_t len)
    {
        const int fd = open(kPath, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return errno;
        const int rc = ::write(fd, text, len) == ssize_t(len) ? 0 : errno;
        close(fd);
        return rc;
    }
    // The guardian waits on a pipe: a byte means "restored, stand down";
    // end of file without one means this process died.
    void start_guardian()
    {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0)
            return;
        const pid_t pid = fork();
        if (pid == 0) {
            close(fds[1]);
            char c;
            ssize_t n;
            while ((n = read(fds[0], &c, 1)) < 0 && errno == EINTR) {
            }
            if (n == 0)
                (void)write_text(original_text_, original_len_);
            _exit(0);
        }
        close(fds[0]);
        if (pid < 0) {
            close(fds[1]);
            return;
        }
        guardian_ = pid;
        guardian_pipe_ = fds[1];
    }
    void stop_guardian()
    {
        if (guardian_ <= 0)
            return;
        (void)!::write(guardian_pipe_, "R", 1);
        close(guardian_pipe_);
        waitpid(guardian_, nullptr, 0);
        guardian_ = -1;
    }

    long original_ = 0;
    char original_text_[32] {};
    size_t original_len_ = 0;
    bool readable_ = false;
    bool changed_ = false;
    pid_t guardian_ = -1;
    int guardian_pipe_ = -1;
};

// ThreadSanitizer sets up a thread's signal context at its first sigsetjmp,
// with an mmap that the lowered limit would refuse (and TSan dies of it).
// One guarded access before the limit drops does that setup in time.
void prepare_guarded_access()
{
    char byte = 0, out = 0;
    (void)try_read(&byte, &out);
    (void)try_write(&byte, 1);
}

size_t mappings_now()
{
    std::ifstream maps("/proc/self/maps");
    size_t lines = 0;
    for (std::string line; std::getline(maps, line);)
        ++lines;
    return lines;
}

char pattern(size_t i, size_t at) { return char(1 + (i * 7 + at) % 251); }

} // namespace

TEST(MapCountLimit, RefusedUnmapIsEnomemAndChangesNothing)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "lowering vm.max_map_count needs root";
    MaxMapCount limit;
    if (!limit.readable())
        GTEST_SKIP() << "cannot read " << MaxMapCount::kPath;
    SegvCatcher segv;
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    constexpr size_t kRegions = 1000;
    auto block = rt->map_anonymous({ .size = kRegions * kPage });
    ASSERT_TRUE(block) << block.error().message();
    auto* base = static_cast<char*>(*block);
    ASSERT_TRUE(rt->unmap(base, kRegions * kPage));
    // Side by side with the same access: the kernel merges them into one
    // mapping, so unmapping one in the middle splits it into three.
    std::vector<char*> region(kRegions);
    for (size_t i = 0; i < kRegions; ++i) {
        auto m = rt->map_anonymous({ .size = kPage, .address = base + i * kPage });
        ASSERT_TRUE(m) << "region " << i << ": " << m.error().message();
        region[i] = static_cast<char*>(*m);
        region[i][0] = pattern(i, 0);
        region[i][kPage - 1] = pattern(i, 1);
    }
    std::vector<char> unmapped(kRegions, 0);

    prepare_guarded_access();
    const long lowered = long(mappings_now()) + 300;
    ASSERT_LT(lowered, limit.original()) << "the limit is already that low";
    if (int rc = limit.set(lowered); rc != 0)
        GTEST_SKIP() << "cannot write " << MaxMapCount::kPath << ": " << strerror(rc);

    // Every other region, until the kernel refuses a split.
    size_t failed = kRegions;
    std::optional<Error> error;
    for (size_t i = 1; i < kRegions; i += 2) {
        auto u = rt->unmap(region[i], kPage);
        if (!u) {
            failed = i;
            error.emplace(u.error());
            break;
        }
        unmapped[i] = 1;
    }
    // Checked before the limit goes back up (reading and writing installed
    // pages needs no new mapping): every region still mapped holds its
    // bytes, and the refused one is still readable and writable.
    size_t wrong = 0;
    for (size_t i = 0; i < kRegions; ++i)
        if (!unmapped[i] && (region[i][0] != pattern(i, 0) || region[i][kPage - 1] != pattern(i, 1)))
            ++wrong;
    char c = 0;
    const bool refused_readable = failed < kRegions && try_read(region[failed] + kPage - 1, &c) && c == pattern(failed, 1);
    const bool refused_writable = failed < kRegions && try_write(region[failed] + 1, 'w');
    limit.restore();

    ASSERT_LT(failed, kRegions) << "no unmap was refused with vm.max_map_count at " << lowered;
    EXPECT_EQ(error->code(), ENOMEM) << error->message();
    EXPECT_NE(std::string(error->message()).find("max_map_count"), std::string::npos) << error->message();
    EXPECT_EQ(wrong, 0u) << "regions lost their bytes";
    EXPECT_TRUE(refused_readable);
    EXPECT_TRUE(refused_writable);
    auto st = rt->region_stats(region[failed]);
    ASSERT_TRUE(st) << "the refused range is no longer a region: " << st.error().message();
    EXPECT_EQ(st->size, kPage);
    EXPECT_EQ(st->access, Access::ReadWrite);
    const size_t gone = size_t(std::count(unmapped.begin(), unmapped.end(), 1));
    EXPECT_GT(gone, 0u);
    EXPECT_EQ(rt->stats().region_count, kRegions - gone);

    // The unmapped ones were given back to the arena: each can be mapped
    // again at its address and reads zero.
    size_t not_free = 0, not_zero = 0;
    for (size_t i = 0; i < kRegions; ++i) {
        if (!unmapped[i])
            continue;
        auto again = rt->map_anonymous({ .size = kPage, .address = region[i] });
        if (!again)
            ++not_free;
        else if (region[i][0] != 0 || region[i][kPage - 1] != 0)
            ++not_zero;
    }
    EXPECT_EQ(not_free, 0u);
    EXPECT_EQ(not_zero, 0u);
    // With the limit back, the refused unmap goes through.
    auto retry = rt->unmap(region[failed], kPage);
    EXPECT_TRUE(retry) << retry.error().message();
    EXPECT_FALSE(try_read(region[failed], &c)) << "an unmapped range must fault";
    EXPECT_EQ(region[failed - 1][0], pattern(failed - 1, 0));
    EXPECT_EQ(region[failed + 1][0], pattern(failed + 1, 0));
}

// mprotect(2) changes one mapping after the other and stops at the first it
// cannot split. A call over two mappings whose second needs a split when
// the process is at vm.max_map_count changes the first and fails: the
// runtime must put it back, or a refused call leaves memory it still calls
// read-write inaccessible (unmap) or read-only (protect).
TEST(MapCountLimit, RefusedCallAcrossTwoMappingsChangesNothing)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "lowering vm.max_map_count needs root";
    MaxMapCount limit;
    if (!limit.readable())
        GTEST_SKIP() << "cannot read " << MaxMapCount::kPath;
    SegvCatcher segv;
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    // shared | private | shared, side by side: three mappings (a memfd
    // mapping never merges with anonymous memory), so a range from the
    // start of the private one into the second shared one covers the whole
    // first mapping (no split) and needs a split in the second.
    constexpr size_t kFiller = 1000;
    auto block = rt->map_anonymous({ .size = (12 + kFiller) * kPage });
    ASSERT_TRUE(block) << block.error().message();
    auto* base = static_cast<char*>(*block);
    ASSERT_TRUE(rt->unmap(base, (12 + kFiller) * kPage));
    ASSERT_TRUE(rt->map_anonymous({ .size = 4 * kPage, .address = base, .flags = RegionFlags::Shared }));
    ASSERT_TRUE(rt->map_anonymous({ .size = 4 * kPage, .address = base + 4 * kPage }));
    ASSERT_TRUE(rt->map_anonymous({ .size = 4 * kPage, .address = base + 8 * kPage, .flags = RegionFlags::Shared }));
    for (size_t i = 0; i < 12; ++i)
        base[i * kPage] = pattern(i, 0);
    char* priv = base + 4 * kPage;
    // One-page regions that merge into one mapping: unmapping every other
    // one brings the process to the limit.
    char* filler = base + 12 * kPage;
    for (size_t i = 0; i < kFiller; ++i) {
        ASSERT_TRUE(rt->map_anonymous({ .size = kPage, .address = filler + i * kPage }));
        filler[i * kPage] = 1;
    }

    prepare_guarded_access();
    if (int rc = limit.set(long(mappings_now()) + 300); rc != 0)
        GTEST_SKIP() << "cannot write " << MaxMapCount::kPath << ": " << strerror(rc);
    // Each unmap in the middle needs two splits; the first refused one
    // leaves the process exactly at the limit.
    bool at_limit = false;
    for (size_t i = 1; i < kFiller && !at_limit; i += 2)
        at_limit = !rt->unmap(filler + i * kPage, kPage);

    auto unmapped = rt->unmap(priv, 5 * kPage);
    int unmap_error = unmapped ? 0 : unmapped.error().code();
    size_t unreadable = 0, wrong = 0;
    char c = 0;
    for (size_t i = 4; i < 9; ++i) {
        if (!try_read(base + i * kPage, &c))
            ++unreadable;
        else if (c != pattern(i, 0))
            ++wrong;
    }
    auto protected_ = rt->protect(priv, 5 * kPage, Access::Read);
    int protect_error = protected_ ? 0 : protected_.error().code();
    size_t unwritable = 0;
    for (size_t i = 4; i < 9; ++i)
        if (!try_write(base + i * kPage + 1, 'w'))
            ++unwritable;
    limit.restore();

    ASSERT_TRUE(at_limit) << "no unmap was refused: the lowered limit had no effect";
    EXPECT_EQ(unmap_error, ENOMEM);
    EXPECT_EQ(unreadable, 0u) << "a refused unmap left pages inaccessible";
    EXPECT_EQ(wrong, 0u);
    EXPECT_EQ(protect_error, ENOMEM);
    EXPECT_EQ(unwritable, 0u) << "a refused protect left pages read-only";
    for (char* p : { priv, base + 8 * kPage }) {
        auto st = rt->region_stats(p);
        ASSERT_TRUE(st);
        EXPECT_EQ(st->access, Access::ReadWrite);
    }
    // With the limit back, both calls go through.
    ASSERT_TRUE(rt->protect(priv, 5 * kPage, Access::Read));
    EXPECT_FALSE(try_write(priv, 'x'));
    ASSERT_TRUE(rt->unmap(priv, 5 * kPage));
    EXPECT_FALSE(try_read(priv, &c));
    EXPECT_EQ(base[9 * kPage], pattern(9, 0));
}
