// The Purger against real memory, without a runtime around it: what it
// reports when the per-page records (PageStates, which are hints) disagree
// with the page tables.
#include "memory/objects/purgeable_vm_object.h"
#include "runtime/commit_ledger.h"
#include "runtime/purger.h"
#include "uffd/userfaultfd.h"

#include <gtest/gtest.h>

#include <cstring>
#include <sys/mman.h>

namespace faultline::testing {
namespace {

constexpr size_t kPage = 4096;

// Pages written while their records say Unpopulated (nothing here fills
// them through the fault path, so nothing records them) hold data: purging
// them must report them, never count them as empty pages dropped.
TEST(Purger, ReportsWrittenPagesWhoseRecordSaysUnpopulated)
{
    auto uffd = uffd::Userfaultfd::open(UffdMode::Auto, {});
    if (!uffd)
        GTEST_SKIP() << "userfaultfd unavailable: " << uffd.error().message();
    constexpr size_t kPages = 8;
    void* mem = mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto* bytes = static_cast<char*>(mem);
    // Pages 0..3 written, 4..7 never touched.
    std::memset(bytes, 0x5a, 4 * kPage);

    CommitLedger ledger(0);
    PurgeConfig config;
    Purger purger(*uffd, ledger, kPage, config);
    auto object = memory::PurgeableVMObject::try_create(kPages * kPage, kPage, PurgedAccess::Zero, {}, nullptr);
    ASSERT_TRUE(object);
    memory::PurgeableVMObject& o = **object;
    {
        std::lock_guard guard(purger.lock());
        purger.add(*object, uintptr_t(mem), false);
        purger.make_volatile(o, 0, kPages, PurgePriority::Normal, false);
    }
    PurgeRequest all;
    all.resident_bytes = kPurgeAll;
    all.reclaim_bytes = kPurgeAll;
    const PurgeResult result = purger.purge(all);
    EXPECT_EQ(result.purged_bytes, 4 * kPage);

    std::vector<Purger::Run> purged, poisoned;
    {
        std::lock_guard guard(purger.lock());
        const Purger::Run changed = purger.make_nonvolatile(o, 0, kPages, false, purged);
        EXPECT_EQ(changed.first, 0u);
        EXPECT_EQ(changed.end, kPages);
        purger.take_poisoned(o, changed, poisoned);
    }
    ASSERT_EQ(purged.size(), 1u);
    EXPECT_EQ(purged[0].first, 0u);
    EXPECT_EQ(purged[0].end, 4u);
    EXPECT_TRUE(poisoned.empty());
    // And they were really dropped.
    for (size_t i = 0; i < 4 * kPage; ++i)
        ASSERT_EQ(bytes[i], 0) << "byte " << i;
    munmap(mem, kPages * kPage);
}

} // namespace
} // namespace faultline::testing
