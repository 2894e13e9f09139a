// fork() without exec for every region kind (issue: copy-on-write, part 6):
// the child reads what each region holds — zeros only where anonymous memory
// was never written, the file's bytes where a file region was never read,
// the parent's bytes where it wrote — and keeps using its regions; the parent
// is verified too. File regions are remapped onto their file in the child
// (runtime/file_fork_plan.h): pages the parent never read, pages it drops
// after the fork, and private pages it copied are each checked.
#include "fork_support.h"
#include "os/fault_injection.h"
#include "support/temp_file.h"
#include "test_support.h"

#include <faultline/store.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <mutex>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

// Pages of the file whose first bytes are checked: every page, byte 0 and
// a byte in the middle (enough to tell the file, zeros and a write apart).
bool page_is(const volatile char* p, size_t page, const char* want)
{
    return p[page * kPage] == want[0] && p[page * kPage + 1000] == want[1000];
}

char mark(size_t page, char salt) { return char(salt + page * 7); }

void fill_page(volatile char* p, size_t page, char salt) { memset(const_cast<char*>(p) + page * kPage, mark(page, salt), kPage); }

bool page_marked(const volatile char* p, size_t page, char salt)
{
    return p[page * kPage] == mark(page, salt) && p[page * kPage + kPage - 1] == mark(page, salt);
}

class ForkFileRegion : public ::testing::TestWithParam<const char*> {};

TEST_P(ForkFileRegion, ASharedRegionReadsTheFileWhereTheParentNeverReadAndEverythingItWrote)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    constexpr size_t kPages = 64;
    TempFile f(kPages * kPage, 21);
    // No readahead: the parent caches exactly the pages it touches.
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite, .name = "fork-shared",
        .readahead_min_pages = 1, .readahead_max_pages = 1 });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    const char* file = f.contents().data();
    for (size_t page = 0; page < 8; ++page)
        ASSERT_EQ(p[page * kPage], file[page * kPage]);
    for (size_t page = 8; page < 12; ++page)
        fill_page(p, page, 'P'); // dirty, not synced: only the parent's cache holds them

    ForkedChild child([&](ForkedChild& self) {
        for (size_t page = 0; page < kPages; ++page) {
            if (page >= 8 && page < 12)
                self.check(page_marked(p, page, 'P'), "page %zu does not hold the parent's unsynced write", page);
            else
                self.check(page_is(p, page, file + page * kPage), "page %zu does not hold the file's bytes%s", page,
                    p[page * kPage] == 0 ? " (zeros)" : "");
        }
        fill_page(p, 20, 'C'); // a page the parent never read
        self.ready();
        self.wait_for_parent();
        self.check(page_marked(p, 30, 'Q'), "the parent's write, synced after the fork, does not reach the child");
    });
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(child.wait_ready()) << child.reap().describe();
    Watchdog dog("a shared file region with a fork child", 30, child.pid());
    // The child's write went to the file. The parent had never read that
    // page, so it reads it from the file. (Like another process mapping the
    // file, it would see a write to a page it holds in its cache once that
    // copy is dropped: docs/api.md, "fork".)
    EXPECT_EQ(f.read_back()[20 * kPage], mark(20, 'C')) << "the child's write did not reach the file";
    EXPECT_TRUE(page_marked(p, 20, 'C')) << "the parent does not read the child's write from the file";
    for (size_t page = 8; page < 12; ++page)
        EXPECT_TRUE(page_marked(p, page, 'P'));
    fill_page(p, 30, 'Q');
    ASSERT_TRUE(rt->sync(*r, f.size(), SyncFlags::Async));
    child.release();
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();
    // Nothing the child did reached the parent's runtime: it keeps serving.
    EXPECT_TRUE(page_is(p, 40, file + 40 * kPage));
    auto back = f.read_back();
    EXPECT_EQ(back[9 * kPage], mark(9, 'P'));
}

TEST_P(ForkFileRegion, APrivateRegionKeepsTheParentsCopiesAndReadsTheFileElsewhere)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = GetParam() });
    constexpr size_t kPages = 48;
    TempFile f(kPages * kPage + 100, 22); // a short last page
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite, .sharing = Sharing::Private,
        .readahead_min_pages = 1, .readahead_max_pages = 1 });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    const char* file = f.contents().data();
    for (size_t page = 0; page < 16; ++page)
        ASSERT_EQ(p[page * kPage], file[page * kPage]);
    for (size_t page = 4; page < 8; ++page)
        fill_page(p, page, 'p'); // private copies: the parent's alone
    fill_page(p, 30, 'p');       // a private copy of a page never read first

    ForkedChild child([&](ForkedChild& self) {
        for (size_t page = 0; page < kPages; ++page) {
            if ((page >= 4 && page < 8) || page == 30)
                self.check(page_marked(p, page, 'p'), "page %zu does not hold the parent's private copy", page);
            else
                self.check(page_is(p, page, file + page * kPage), "page %zu does not hold the file's bytes%s", page,
                    p[page * kPage] == 0 ? " (zeros)" : "");
        }
        self.check(p[kPages * kPage + 99] == file[kPages * kPage + 99], "the short last page is wrong");
        self.check(p[kPages * kPage + 100] == 0, "the short last page is not zero past the end of the file");
        fill_page(p, 10, 'c');
        fill_page(p, 40, 'c');
        self.check(page_marked(p, 10, 'c') && page_marked(p, 40, 'c'), "the child cannot write its copy");
    });
    ASSERT_TRUE(child.started());
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();
    EXPECT_TRUE(page_is(p, 10, file + 10 * kPage)) << "the child's private write reached the parent";
    EXPECT_TRUE(page_is(p, 40, file + 40 * kPage)) << "the child's private write reached the parent";
    EXPECT_TRUE(page_marked(p, 5, 'p'));
    EXPECT_TRUE(f.read_back() == f.contents()) << "a private region's write reached the file";
}

INSTANTIATE_TEST_SUITE_P(Modes, ForkFileRegion,
    // Zero-copy, copy mode (no minor faults), asynchronous and untracked
    // writes, and the child's pagemap read without PAGEMAP_SCAN.
    ::testing::Values("", "minor", "wp_async", "wp_async,wp_shmem", "pagemap_scan,wp_async"),
    [](const auto& info) {
        std::string name = *info.param ? info.param : "default";
        for (char& c : name)
            if (c == ',')
                c = '_';
        return name;
    });

TEST(ForkFileRegions, PagesTheParentEvictsAfterTheForkStillReadInTheChild)
{
    // Under a budget the parent drops pages from its cache all the time; a
    // child that viewed the cache would read zeros for every page dropped
    // after the fork.
    Config c;
    c.memory_budget = 64 * kPage;
    c.eviction_batch_pages = 16;
    FAULTLINE_RUNTIME_OR_SKIP(rt, c);
    constexpr size_t kPages = 512;
    TempFile f(kPages * kPage, 23);
    // Written pages can be evicted only with write-protect and minor faults
    // on shared memory; without them the region is read-only and only clean
    // pages come and go (what the child must still read right).
    const bool writes = rt->has_feature("wp_shmem") && rt->has_feature("minor");
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = writes ? Access::ReadWrite : Access::Read, .name = "fork-budget" });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    for (size_t page = 0; writes && page < kPages; page += 2)
        fill_page(p, page, 'B');

    ForkedChild child([&](ForkedChild& self) {
        self.ready();
        self.wait_for_parent();
        const char* file = f.contents().data();
        size_t wrong = 0, zeros = 0;
        for (size_t page = 0; page < kPages; ++page) {
            const bool ok = writes && page % 2 == 0 ? page_marked(p, page, 'B') : page_is(p, page, file + page * kPage);
            wrong += !ok;
            zeros += !ok && p[page * kPage] == 0;
        }
        self.check(wrong == 0, "%zu of %zu pages wrong in the child (%zu read zeros)", wrong, kPages, zeros);
    });
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(child.wait_ready()) << child.reap().describe();
    Watchdog dog("a budgeted file region with a fork child", 60, child.pid());
    // Read the whole file twice over: every page the parent held at the fork
    // is evicted at least once before the child looks.
    const char* file = f.contents().data();
    for (int pass = 0; pass < 2; ++pass)
        for (size_t page = 0; page < kPages; ++page)
            ASSERT_EQ(p[page * kPage], writes && page % 2 == 0 ? mark(page, 'B') : file[page * kPage]);
    EXPECT_GT(rt->stats().evictions_clean + rt->stats().evictions_dirty, 0u);
    child.release();
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();
}

TEST(ForkFileRegions, PagesWhoseWriteBackFailedAtTheForkKeepTheParentsBytes)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kPages = 16;
    TempFile f(kPages * kPage, 24);
    auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    for (size_t page = 0; page < 4; ++page)
        fill_page(p, page, 'E');
    // Every write-back fails while the fork prepares.
    os::FaultInjection::arm(os::InjectOp::FileWrite, EIO, 1000);
    ForkedChild child([&](ForkedChild& self) {
        const char* file = f.contents().data();
        for (size_t page = 0; page < kPages; ++page)
            self.check(page < 4 ? page_marked(p, page, 'E') : page_is(p, page, file + page * kPage),
                "page %zu is wrong in the child", page);
    });
    os::FaultInjection::disarm_all();
    ASSERT_TRUE(child.started());
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();
    EXPECT_TRUE(rt->sync(*r, f.size(), SyncFlags::Sync)) << "the pages stay dirty and are written later";
    EXPECT_EQ(f.read_back()[2 * kPage], mark(2, 'E'));
}

// A store in memory: what the child cannot reach.
class PatternStore : public Store {
public:
    explicit PatternStore(size_t size) : bytes_(size, 's') {}
    uint64_t size() noexcept override { return bytes_.size(); }
    int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        std::lock_guard g(lock_);
        const size_t n = offset >= bytes_.size() ? 0 : std::min(bytes, bytes_.size() - size_t(offset));
        memcpy(buffer, bytes_.data() + offset, n);
        return int64_t(n);
    }
    bool writable() const noexcept override { return true; }
    int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        std::lock_guard g(lock_);
        const size_t n = offset >= bytes_.size() ? 0 : std::min(bytes, bytes_.size() - size_t(offset));
        memcpy(bytes_.data() + offset, buffer, n);
        return int64_t(n);
    }

private:
    std::mutex lock_;
    std::vector<char> bytes_;
};

TEST(ForkFileRegions, AStoreRegionIsOutOfReachInTheChildAndTheParentKeepsIt)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    auto store = std::make_shared<PatternStore>(16 * kPage);
    auto r = rt->map_store(store, { .length = 16 * kPage, .access = Access::ReadWrite });
    ASSERT_TRUE(r) << r.error().message();
    auto* p = static_cast<volatile char*>(*r);
    ASSERT_EQ(p[0], 's');
    ForkedChild child([&](ForkedChild&) {
        (void)p[5 * kPage]; // served by the parent's store threads only: a signal, never a guess
        _exit(3);
    });
    ASSERT_TRUE(child.started());
    auto out = child.reap();
    EXPECT_TRUE(!out.timed_out && WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGSEGV) << out.describe();
    EXPECT_EQ(p[5 * kPage], 's');
    p[6 * kPage] = 'w';
    EXPECT_TRUE(rt->sync(*r, 16 * kPage, SyncFlags::None));
}

TEST(ForkRegions, EveryKindReadsItsBytesInTheChildAndBothSidesKeepUsingThem)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    constexpr size_t kPages = 16;
    // Two files with the same bytes: a write through a shared region of a
    // file shows in its private regions too, as with mmap(2).
    TempFile f(kPages * kPage, 25), g(kPages * kPage, 25);
    const char* file = f.contents().data();
    auto anon = rt->map_anonymous({ .size = kPages * kPage, .name = "anon" });
    auto shared_anon = rt->map_anonymous({ .size = kPages * kPage, .flags = RegionFlags::Shared });
    auto purgeable = rt->allocate_purgeable(kPages * kPage);
    auto clonable = rt->map_anonymous({ .size = kPages * kPage, .flags = RegionFlags::Clonable });
    auto shared_file = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite, .readahead_min_pages = 1,
        .readahead_max_pages = 1 });
    auto private_file = rt->map_file(g.fd(), { .length = g.size(), .access = Access::ReadWrite,
        .sharing = Sharing::Private, .readahead_min_pages = 1, .readahead_max_pages = 1 });
    for (auto* m : { &anon, &shared_anon, &purgeable, &clonable, &shared_file, &private_file })
        ASSERT_TRUE(*m) << m->error().message();
    struct Kind {
        const char* name;
        volatile char* p;
        bool file;
    };
    const Kind kinds[] = {
        { "anonymous", static_cast<volatile char*>(*anon), false },
        { "shared anonymous", static_cast<volatile char*>(*shared_anon), false },
        { "purgeable", static_cast<volatile char*>(*purgeable), false },
        { "clonable", static_cast<volatile char*>(*clonable), false },
        { "shared file", static_cast<volatile char*>(*shared_file), true },
        { "private file", static_cast<volatile char*>(*private_file), true },
    };
    // Pages 0-3 written, 4-7 read, the rest never touched.
    for (const Kind& k : kinds)
        for (size_t page = 0; page < 8; ++page) {
            if (page < 4)
                fill_page(k.p, page, 'K');
            else
                (void)k.p[page * kPage];
        }
    auto clone = rt->clone(*clonable);
    ASSERT_TRUE(clone) << clone.error().message();
    auto* cp = static_cast<volatile char*>(*clone);
    fill_page(cp, 1, 'L');

    ForkedChild child([&](ForkedChild& self) {
        for (const Kind& k : kinds) {
            for (size_t page = 0; page < kPages; ++page) {
                bool ok;
                if (page < 4)
                    ok = page_marked(k.p, page, 'K');
                else
                    ok = k.file ? page_is(k.p, page, file + page * kPage) : k.p[page * kPage] == 0;
                self.check(ok, "%s region: page %zu is wrong in the child", k.name, page);
            }
            fill_page(k.p, 12, 'c');
            self.check(page_marked(k.p, 12, 'c'), "%s region: the child cannot write", k.name);
        }
        self.check(page_marked(cp, 1, 'L') && page_marked(cp, 0, 'K'), "the clone is wrong in the child");
        self.ready();
        self.wait_for_parent();
    });
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(child.wait_ready()) << child.reap().describe();
    Watchdog dog("every region kind with a fork child", 30, child.pid());
    for (const Kind& k : kinds) {
        // Page 12 is the child's: shared kinds see its write, private ones
        // their own bytes.
        const bool shares = k.name == std::string("shared anonymous") || k.name == std::string("shared file");
        if (shares)
            EXPECT_TRUE(page_marked(k.p, 12, 'c')) << k.name;
        else if (k.file)
            EXPECT_TRUE(page_is(k.p, 12, file + 12 * kPage)) << k.name;
        else
            EXPECT_EQ(k.p[12 * kPage], 0) << k.name;
        EXPECT_TRUE(page_marked(k.p, 2, 'K')) << k.name;
        fill_page(k.p, 13, 'q');
        EXPECT_TRUE(page_marked(k.p, 13, 'q')) << k.name;
    }
    child.release();
    auto out = child.reap();
    EXPECT_TRUE(out.exited_zero()) << out.describe();
}

TEST(ForkRegions, ThreadsMappingAndUnmappingFileRegionsWhileAnotherForks)
{
    // The plan is recorded under the API lock held across the fork: a
    // region mapped or unmapped concurrently is either wholly in it or not.
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    TempFile f(32 * kPage, 26);
    std::atomic<bool> stop { false };
    std::thread mapper([&] {
        while (!stop.load()) {
            auto r = rt->map_file(f.fd(), { .length = f.size(), .access = Access::ReadWrite });
            if (r) {
                static_cast<volatile char*>(*r)[kPage] = 1;
                (void)rt->unmap(*r, f.size());
            }
        }
    });
    auto keep = rt->map_file(f.fd(), { .length = f.size(), .sharing = Sharing::Private });
    ASSERT_TRUE(keep) << keep.error().message();
    auto* p = static_cast<const volatile char*>(*keep);
    for (int i = 0; i < 20; ++i) {
        ForkedChild child([&](ForkedChild& self) {
            self.check(p[17 * kPage] == f.contents()[17 * kPage], "the private region reads wrong in the child");
        });
        ASSERT_TRUE(child.started());
        auto out = child.reap();
        EXPECT_TRUE(out.exited_zero()) << out.describe();
    }
    stop = true;
    mapper.join();
}

} // namespace
} // namespace faultline::testing
