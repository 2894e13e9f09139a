// The umap-compatible API (include/umap/): the configuration from UMAP_*
// (set in umap_main.cc: 16 KiB umap pages, a 64-page buffer, ...), umap_ex
// with a Umap::Store, umap() of a file, flags and arguments umap refuses
// (EINVAL, never abort), umap_prefetch and umap_fetch_and_pin.
#include "support/guarded_access.h"
#include "support/temp_file.h"
#include "umap/umap_config.h"
#include "umap/umap_service.h"

#include <umap/umap.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace {

using faultline::testing::guarded_access;
using faultline::testing::TempFile;
using faultline::umap::UmapService;

constexpr size_t kUmapPage = 16384; // UMAP_PAGESIZE in umap_main.cc
constexpr size_t kSysPage = 4096;

char pattern(uint64_t offset) { return char((offset * 2654435761u) >> 9); }

// A store in memory, as an application would write for umap: every call is
// recorded (offset, size, thread), reads can be made to fail.
class MemoryStore : public Umap::Store {
public:
    explicit MemoryStore(size_t size)
        : bytes_(size)
    {
        for (size_t i = 0; i < size; ++i)
            bytes_[i] = pattern(i);
    }
    ssize_t read_from_store(char* buf, std::size_t nb, off_t off) override
    {
        std::lock_guard g(lock_);
        reads_.emplace_back(off, nb);
        threads_.insert(std::this_thread::get_id());
        if (fail_reads_) {
            errno = EIO;
            return -1;
        }
        if (size_t(off) + nb > bytes_.size())
            return 0;
        memcpy(buf, bytes_.data() + off, nb);
        return ssize_t(nb);
    }
    ssize_t write_to_store(char* buf, std::size_t nb, off_t off) override
    {
        std::lock_guard g(lock_);
        writes_.emplace_back(off, nb);
        threads_.insert(std::this_thread::get_id());
        memcpy(bytes_.data() + off, buf, nb);
        return ssize_t(nb);
    }
    char at(size_t offset)
    {
        std::lock_guard g(lock_);
        return bytes_[offset];
    }
    std::vector<std::pair<off_t, size_t>> reads()
    {
        std::lock_guard g(lock_);
        return reads_;
    }
    std::vector<std::pair<off_t, size_t>> writes()
    {
        std::lock_guard g(lock_);
        return writes_;
    }
    bool read_covers(size_t offset)
    {
        for (auto [off, nb] : reads())
            if (offset >= size_t(off) && offset < size_t(off) + nb)
                return true;
        return false;
    }
    std::set<std::thread::id> threads()
    {
        std::lock_guard g(lock_);
        return threads_;
    }
    std::atomic<bool> fail_reads_ { false };

private:
    std::mutex lock_;
    std::vector<char> bytes_;
    std::vector<std::pair<off_t, size_t>> reads_, writes_;
    std::set<std::thread::id> threads_;
};

// A umap region (or skip when this machine has no userfaultfd).
#define UMAP_OR_SKIP(var, call)                                                                              \
    void* var = (call);                                                                                      \
    if (var == UMAP_FAILED && (errno == EPERM || errno == ENOSYS))                                           \
        GTEST_SKIP() << "userfaultfd unavailable: " << strerror(errno);                                      \
    if (var == UMAP_FAILED && errno == EOPNOTSUPP)                                                           \
        GTEST_SKIP() << "a writable region under UMAP_BUFSIZE needs write-protect and minor faults on "       \
                        "shared memory (docs/kernels.md), which this kernel or FAULTLINE_DISABLE hides";     \
    ASSERT_NE(var, UMAP_FAILED) << strerror(errno)

TEST(UmapConfig, GettersReflectTheEnvironment)
{
    EXPECT_EQ(umapcfg_get_system_page_size(), long(sysconf(_SC_PAGESIZE)));
    EXPECT_EQ(umapcfg_get_umap_page_size(), kUmapPage);
    EXPECT_EQ(umapcfg_get_max_pages_in_buffer(), 64u);
    EXPECT_EQ(umapcfg_get_num_fillers(), 3u);
    EXPECT_EQ(umapcfg_get_num_evictors(), 5u);
    EXPECT_EQ(umapcfg_get_evict_high_water_threshold(), 80);
    EXPECT_EQ(umapcfg_get_evict_low_water_threshold(), 60);
    EXPECT_EQ(umapcfg_get_read_ahead(), 2u);
    EXPECT_EQ(umapcfg_get_max_fault_events(), 128u);
    EXPECT_EQ(umap_has_write_support(), 1);
}

TEST(UmapConfig, TheRuntimeIsConfiguredFromTheEnvironment)
{
    MemoryStore store(4 * kUmapPage);
    UMAP_OR_SKIP(p, Umap::umap_ex(nullptr, 4 * kUmapPage, PROT_READ, UMAP_PRIVATE, -1, 0, &store));
    faultline::Runtime* rt = UmapService::instance().runtime_if_created();
    ASSERT_NE(rt, nullptr);
    EXPECT_EQ(rt->config().memory_budget, 64 * kUmapPage) << "UMAP_BUFSIZE umap pages";
    EXPECT_EQ(rt->config().budget_high_percent, 80u);
    EXPECT_EQ(rt->config().budget_low_percent, 60u);
    EXPECT_LE(uint64_t(rt->config().eviction_batch_pages) * kSysPage, rt->config().memory_budget);
    // A fault reads its umap page and UMAP_READ_AHEAD more: 3 x 16 KiB.
    auto stats = rt->region_stats(p);
    ASSERT_TRUE(stats);
    EXPECT_EQ(uintptr_t(p) % kUmapPage, 0u) << "regions start on a umap page";
    (void)static_cast<volatile char*>(p)[0];
    EXPECT_TRUE(store.read_covers(0));
    EXPECT_TRUE(store.read_covers(2 * kUmapPage + 5)) << "read-ahead of UMAP_READ_AHEAD umap pages";
    EXPECT_EQ(uunmap(p, 4 * kUmapPage), 0);
}

TEST(UmapConfig, ValuesThatCannotWorkAreReportedNotFatal)
{
    // The service read its configuration in main(); this reads it again.
    struct Env {
        const char* name;
        const char* value;
    };
    auto problem_with = [](std::vector<Env> env) {
        std::vector<std::pair<std::string, std::string>> saved;
        for (auto& e : env) {
            const char* old = getenv(e.name);
            saved.emplace_back(e.name, old ? old : "");
            setenv(e.name, e.value, 1);
        }
        auto c = faultline::umap::UmapConfig::from_environment();
        for (auto& [n, v] : saved)
            setenv(n.c_str(), v.c_str(), 1);
        return c.problem() ? c.problem()->code() : 0;
    };
    EXPECT_EQ(problem_with({}), 0);
    EXPECT_EQ(problem_with({ { "UMAP_PAGESIZE", "5000" } }), EINVAL);
    EXPECT_EQ(problem_with({ { "UMAP_PAGESIZE", "12288" } }), EINVAL) << "not a power of two";
    EXPECT_EQ(problem_with({ { "UMAP_BUFSIZE", "lots" } }), EINVAL);
    EXPECT_EQ(problem_with({ { "UMAP_READ_AHEAD", "-1" } }), EINVAL);
    EXPECT_EQ(problem_with({ { "UMAP_EVICT_LOW_WATER_THRESHOLD", "90" } }), EINVAL) << "low above high (80)";
    EXPECT_EQ(problem_with({ { "UMAP_EVICT_HIGH_WATER_THRESHOLD", "101" } }), EINVAL);
    // 0 means "the default", as in umap.
    EXPECT_EQ(problem_with({ { "UMAP_PAGESIZE", "0" } }), 0);
}

TEST(UmapEx, PagesComeFromTheStoreAndWritesGoBackOnFlushAndUunmap)
{
    const size_t size = 32 * kUmapPage;
    MemoryStore store(size + 4 * kUmapPage);
    // From a store offset of one umap page.
    UMAP_OR_SKIP(p, Umap::umap_ex(nullptr, size, PROT_READ | PROT_WRITE, UMAP_PRIVATE, -1, off_t(kUmapPage), &store));
    char* c = static_cast<char*>(p);
    size_t bad = 0;
    for (size_t i = 0; i < size; ++i)
        bad += c[i] != pattern(kUmapPage + i);
    EXPECT_EQ(bad, 0u);
    // umap's contract for a store: one umap page at most per call, never
    // across a umap page boundary, and never on the application's thread.
    for (auto [off, nb] : store.reads()) {
        EXPECT_LE(nb, kUmapPage);
        EXPECT_EQ(size_t(off) / kUmapPage, (size_t(off) + nb - 1) / kUmapPage) << off << "+" << nb;
        EXPECT_LE(size_t(off) + nb, size + kUmapPage) << "never past the region's end";
    }
    EXPECT_EQ(store.threads().count(std::this_thread::get_id()), 0u);

    c[5 * kUmapPage + 3] = 'W';
    c[20 * kUmapPage] = 'X';
    EXPECT_NE(store.at(6 * kUmapPage + 3), 'W') << "nothing is written before a flush";
    ASSERT_EQ(umap_flush(), 0) << strerror(errno);
    EXPECT_EQ(store.at(6 * kUmapPage + 3), 'W');
    EXPECT_EQ(store.at(21 * kUmapPage), 'X');
    for (auto [off, nb] : store.writes())
        EXPECT_EQ(size_t(off) / kUmapPage, (size_t(off) + nb - 1) / kUmapPage) << off << "+" << nb;
    c[31 * kUmapPage + kUmapPage - 1] = 'U';
    ASSERT_EQ(uunmap(p, size), 0) << strerror(errno);
    EXPECT_EQ(store.at(32 * kUmapPage + kUmapPage - 1), 'U') << "uunmap writes back";
    EXPECT_EQ(store.at(0), pattern(0)) << "nothing before the offset was touched";
}

TEST(UmapEx, AFailingStoreReadIsSigbusInTheFaultingThread)
{
    MemoryStore store(8 * kUmapPage);
    store.fail_reads_ = true;
    UMAP_OR_SKIP(p, Umap::umap_ex(nullptr, 8 * kUmapPage, PROT_READ, UMAP_PRIVATE, -1, 0, &store));
    volatile char* c = static_cast<char*>(p);
    int sig = 0;
    std::thread t([&] { sig = guarded_access([&] { (void)c[0]; }); });
    t.join();
    EXPECT_EQ(sig, SIGBUS);
    store.fail_reads_ = false;
    EXPECT_EQ(c[6 * kUmapPage], pattern(6 * kUmapPage)) << "other pages read once the store works";
    EXPECT_EQ(uunmap(p, 8 * kUmapPage), 0);
}

// Found by the umap fuzz target (tests/fuzz/umap.cc): uunmap returned while
// a readahead read was still calling the store on a store thread, and the
// application then deleted the store (umap allows that at once). No call may
// reach the store once uunmap has returned.
TEST(UmapEx, NoStoreCallStartsAfterUunmapReturns)
{
    class SlowStore : public Umap::Store {
    public:
        ssize_t read_from_store(char* buf, std::size_t nb, off_t off) override
        {
            if (unmapped)
                ++late_calls;
            // Slow, so that readahead reads are still in flight at uunmap.
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            for (size_t i = 0; i < nb; ++i)
                buf[i] = pattern(size_t(off) + i);
            return ssize_t(nb);
        }
        ssize_t write_to_store(char*, std::size_t nb, off_t) override { return ssize_t(nb); }
        std::atomic<bool> unmapped { false };
        std::atomic<int> late_calls { 0 };
    };
    for (int round = 0; round < 5; ++round) {
        SlowStore store;
        const size_t size = 256 * kUmapPage;
        UMAP_OR_SKIP(p, Umap::umap_ex(nullptr, size, PROT_READ, UMAP_PRIVATE, -1, 0, &store));
        // A sequential reader: the next readahead window is read while it
        // works through the current one.
        volatile char* c = static_cast<char*>(p);
        for (size_t i = 0; i < 24 * kUmapPage; i += kSysPage)
            ASSERT_EQ(c[i], pattern(i));
        ASSERT_EQ(uunmap(p, size), 0) << strerror(errno);
        store.unmapped = true;
        // What a store thread still had to do would call the store now.
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        EXPECT_EQ(store.late_calls.load(), 0) << "round " << round;
    }
}

TEST(Umap, AFileReadAndWrittenLikeUmap)
{
    TempFile file(64 * kUmapPage, 7);
    int fd = file.open_again(O_RDWR);
    ASSERT_GE(fd, 0);
    UMAP_OR_SKIP(p, umap(nullptr, 64 * kUmapPage, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd, 0));
    char* c = static_cast<char*>(p);
    EXPECT_EQ(memcmp(c, file.contents().data(), 64 * kUmapPage), 0);
    for (size_t page = 0; page < 64; page += 7)
        c[page * kUmapPage + 11] = char(page);
    ASSERT_EQ(uunmap(p, 64 * kUmapPage), 0);
    auto back = file.read_back();
    ASSERT_EQ(back.size(), 64 * kUmapPage);
    for (size_t i = 0; i < back.size(); ++i) {
        const size_t page = i / kUmapPage;
        const char want = (page % 7 == 0 && i % kUmapPage == 11) ? char(page) : file.contents()[i];
        ASSERT_EQ(back[i], want) << "byte " << i;
    }
    close(fd);
}

TEST(Umap, MakeStoreGivesAFileStore)
{
    TempFile file(8 * kUmapPage, 3);
    int fd = file.open_again(O_RDWR);
    Umap::Store* store = Umap::Store::make_store(nullptr, 8 * kUmapPage, kUmapPage, fd);
    ASSERT_NE(store, nullptr);
    UMAP_OR_SKIP(p, Umap::umap_ex(nullptr, 8 * kUmapPage, PROT_READ | PROT_WRITE, UMAP_PRIVATE, -1, 0, store));
    char* c = static_cast<char*>(p);
    EXPECT_EQ(memcmp(c, file.contents().data(), 8 * kUmapPage), 0);
    c[kUmapPage] = '!';
    ASSERT_EQ(uunmap(p, 8 * kUmapPage), 0);
    EXPECT_EQ(file.read_back()[kUmapPage], '!');
    delete store;
    close(fd);
    errno = 0;
    EXPECT_EQ(Umap::Store::make_store(nullptr, 0, 0, -1), nullptr);
    EXPECT_EQ(errno, EBADF);
}

TEST(Umap, ArgumentsUmapRefusesAreEinvalNotAbort)
{
    TempFile file(8 * kUmapPage);
    int ro = file.open_again(O_RDONLY);
    MemoryStore store(8 * kUmapPage);
    // Make sure the runtime exists, so each errno below is the argument's.
    UMAP_OR_SKIP(ok, umap(nullptr, kUmapPage, PROT_READ, UMAP_PRIVATE, ro, 0));
    auto err = [](void* r) { return r == UMAP_FAILED ? errno : 0; };
    const size_t n = 4 * kUmapPage;
    EXPECT_EQ(err(umap(nullptr, n, PROT_READ, MAP_SHARED, ro, 0)), EINVAL) << "UMAP_SHARED is not supported";
    EXPECT_EQ(err(umap(nullptr, n, PROT_READ, 0, ro, 0)), EINVAL) << "UMAP_PRIVATE is required";
    EXPECT_EQ(err(umap(nullptr, n, PROT_READ, UMAP_PRIVATE | MAP_ANONYMOUS, ro, 0)), EINVAL);
    EXPECT_EQ(err(umap(nullptr, n, PROT_READ, UMAP_PRIVATE | MAP_POPULATE, ro, 0)), EINVAL);
    EXPECT_EQ(err(umap(nullptr, n, PROT_READ | PROT_EXEC, UMAP_PRIVATE, ro, 0)), EINVAL);
    EXPECT_EQ(err(umap(nullptr, 0, PROT_READ, UMAP_PRIVATE, ro, 0)), EINVAL);
    EXPECT_EQ(err(umap(nullptr, n + kSysPage, PROT_READ, UMAP_PRIVATE, ro, 0)), EINVAL) << "not a umap page multiple";
    EXPECT_EQ(err(umap(reinterpret_cast<void*>(kSysPage * 3), n, PROT_READ, UMAP_PRIVATE, ro, 0)), EINVAL);
    EXPECT_EQ(err(umap(nullptr, n, PROT_READ, UMAP_PRIVATE | UMAP_FIXED, ro, 0)), EINVAL);
    EXPECT_EQ(err(umap(nullptr, n, PROT_READ, UMAP_PRIVATE, ro, off_t(kSysPage))), EINVAL) << "offset off the umap page";
    EXPECT_EQ(err(umap(nullptr, n, PROT_READ, UMAP_PRIVATE, ro, -off_t(kUmapPage))), EINVAL);
    EXPECT_EQ(err(umap(nullptr, n, PROT_READ, UMAP_PRIVATE, -1, 0)), EBADF);
    EXPECT_EQ(err(umap(nullptr, n, PROT_READ | PROT_WRITE, UMAP_PRIVATE, ro, 0)), EACCES)
        << "written pages go back to the file: it must be open for writing";
    EXPECT_EQ(err(Umap::umap_ex(nullptr, n, PROT_READ, MAP_SHARED, -1, 0, &store)), EINVAL);
    // UMAP_FIXED outside the runtime's arena.
    static char outside[4 * kUmapPage] alignas(kUmapPage);
    EXPECT_EQ(err(umap(outside, n, PROT_READ, UMAP_PRIVATE | UMAP_FIXED, ro, 0)), EINVAL);
    errno = 0;
    EXPECT_EQ(uunmap(static_cast<char*>(ok) + kSysPage, kUmapPage), -1);
    EXPECT_EQ(errno, EINVAL) << "uunmap needs the start of a region";
    EXPECT_EQ(store.reads().size(), 0u);
    EXPECT_EQ(uunmap(ok, kUmapPage), 0);
    close(ro);
}

TEST(Umap, FixedPlacesTheRegionExactly)
{
    MemoryStore store(8 * kUmapPage);
    UMAP_OR_SKIP(first, Umap::umap_ex(nullptr, 8 * kUmapPage, PROT_READ, UMAP_PRIVATE, -1, 0, &store));
    ASSERT_EQ(uunmap(first, 8 * kUmapPage), 0);
    void* again = Umap::umap_ex(first, 8 * kUmapPage, PROT_READ, UMAP_PRIVATE | UMAP_FIXED, -1, 0, &store);
    ASSERT_EQ(again, first) << strerror(errno);
    EXPECT_EQ(static_cast<volatile char*>(again)[3 * kUmapPage + 1], pattern(3 * kUmapPage + 1));
    // A second region over the first: refused, the first untouched.
    errno = 0;
    EXPECT_EQ(Umap::umap_ex(first, 8 * kUmapPage, PROT_READ, UMAP_PRIVATE | UMAP_FIXED, -1, 0, &store), UMAP_FAILED);
    EXPECT_EQ(errno, EEXIST);
    EXPECT_EQ(static_cast<volatile char*>(again)[1], pattern(1));
    EXPECT_EQ(uunmap(again, 8 * kUmapPage), 0);
}

TEST(Umap, PrefetchReadsTheListedPagesBeforeTheyAreTouched)
{
    MemoryStore store(32 * kUmapPage);
    UMAP_OR_SKIP(p, Umap::umap_ex(nullptr, 32 * kUmapPage, PROT_READ, UMAP_PRIVATE, -1, 0, &store));
    char* c = static_cast<char*>(p);
    // Any address inside a umap page names that page.
    umap_prefetch_item items[] = { { c + 4 * kUmapPage }, { c + 20 * kUmapPage + 100 } };
    umap_prefetch(2, items);
    EXPECT_TRUE(store.read_covers(4 * kUmapPage));
    EXPECT_TRUE(store.read_covers(20 * kUmapPage));
    EXPECT_TRUE(store.read_covers(20 * kUmapPage + kUmapPage - 1));
    EXPECT_FALSE(store.read_covers(12 * kUmapPage)) << "only what was asked for (and its read-ahead)";
    faultline::Runtime* rt = UmapService::instance().runtime_if_created();
    ASSERT_NE(rt, nullptr);
    auto before = rt->region_stats(p);
    ASSERT_TRUE(before);
    EXPECT_GE(before->amount_resident, 2 * kUmapPage) << "the prefetched pages are mapped";
    const size_t reads = store.reads().size();
    EXPECT_EQ(c[4 * kUmapPage + 7], pattern(4 * kUmapPage + 7));
    EXPECT_EQ(c[20 * kUmapPage + 9000], pattern(20 * kUmapPage + 9000));
    EXPECT_EQ(store.reads().size(), reads) << "touching prefetched pages reads nothing more";

    // Bad input: errno EINVAL and nothing read.
    umap_prefetch_item stray[] = { { c + 28 * kUmapPage }, { reinterpret_cast<void*>(&store) } };
    errno = 0;
    umap_prefetch(2, stray);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(store.reads().size(), reads) << "all or nothing";
    errno = 0;
    umap_prefetch(-1, items);
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    umap_prefetch(3, nullptr);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(uunmap(p, 32 * kUmapPage), 0);
}

TEST(Umap, FetchAndPinReadsTheRangeIn)
{
    MemoryStore store(32 * kUmapPage);
    UMAP_OR_SKIP(p, Umap::umap_ex(nullptr, 32 * kUmapPage, PROT_READ | PROT_WRITE, UMAP_PRIVATE, -1, 0, &store));
    char* c = static_cast<char*>(p);
    umap_fetch_and_pin(c + 8 * kUmapPage, 8 * kUmapPage);
    for (size_t off = 8 * kUmapPage; off < 16 * kUmapPage; off += kSysPage)
        EXPECT_TRUE(store.read_covers(off)) << off;
    faultline::Runtime* rt = UmapService::instance().runtime_if_created();
    ASSERT_NE(rt, nullptr);
    auto st = rt->region_stats(p);
    ASSERT_TRUE(st);
    EXPECT_GE(st->amount_resident, 8 * kUmapPage);
    // Where writes are tracked page by page (without, every cached page of a
    // writable region counts as dirty: docs/kernels.md).
    if (rt->has_feature("minor") && (rt->has_feature("wp_shmem") || rt->has_feature("wp_async"))) {
        EXPECT_EQ(st->dirty_pages, 0u) << "fetching reads; it dirties nothing";
    }
    const size_t reads = store.reads().size();
    errno = 0;
    umap_fetch_and_pin(c + 30 * kUmapPage, 4 * kUmapPage);
    EXPECT_EQ(errno, EINVAL) << "past the region's end";
    EXPECT_EQ(store.reads().size(), reads) << "nothing read for a range refused";
    errno = 0;
    umap_fetch_and_pin(reinterpret_cast<char*>(&store), kSysPage);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(uunmap(p, 32 * kUmapPage), 0);
}

} // namespace
