// Pagemap entry decoding: which entries may teach the zero page's PFN, and
// how classify() sorts synthetic entries. No page tables are read here
// beyond what Pagemap::open() itself does.
#include "os/pagemap.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <utility>

using faultline::os::Pagemap;
using Kind = Pagemap::Kind;

namespace {

// The bits of a /proc/self/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
constexpr uint64_t kPresent = uint64_t(1) << 63;
constexpr uint64_t kSwapped = uint64_t(1) << 62;
constexpr uint64_t kFileOrShared = uint64_t(1) << 61;
constexpr uint64_t kExclusive = uint64_t(1) << 56;
constexpr uint64_t kSoftDirty = uint64_t(1) << 55;
constexpr uint64_t kPfnMask = (uint64_t(1) << 55) - 1;

constexpr uint64_t kPfn = 0x12345;

TEST(Pagemap, EntryBits)
{
    const uint64_t e = kPresent | kExclusive | kSoftDirty | kPfn;
    EXPECT_TRUE(Pagemap::present(e));
    EXPECT_TRUE(Pagemap::exclusive(e));
    EXPECT_FALSE(Pagemap::swapped(e));
    EXPECT_FALSE(Pagemap::file_or_shared(e));
    EXPECT_EQ(Pagemap::pfn(e), kPfn); // soft-dirty (bit 55) is not part of the PFN
    EXPECT_EQ(Pagemap::pfn(kPresent | kPfnMask), kPfnMask);
    EXPECT_TRUE(Pagemap::swapped(kSwapped));
    EXPECT_TRUE(Pagemap::file_or_shared(kFileOrShared));
    EXPECT_FALSE(Pagemap::present(kSwapped | kFileOrShared | kExclusive | kPfn));
}

TEST(Pagemap, ZeroPfnIsLearnedOnlyFromAPresentSharedAnonymousEntry)
{
    EXPECT_EQ(Pagemap::zero_pfn_from(kPresent | kPfn), kPfn);
    EXPECT_EQ(Pagemap::zero_pfn_from(kPresent | kSoftDirty | kPfn), kPfn);
    // Some VMs answer a read fault with a private zeroed page, mapped
    // exclusively: learning its PFN would call every page at it "zero".
    EXPECT_EQ(Pagemap::zero_pfn_from(kPresent | kExclusive | kPfn), 0u);
    EXPECT_EQ(Pagemap::zero_pfn_from(kPresent | kFileOrShared | kPfn), 0u);
    EXPECT_EQ(Pagemap::zero_pfn_from(kPresent | kFileOrShared | kExclusive | kPfn), 0u);
    EXPECT_EQ(Pagemap::zero_pfn_from(kPfn), 0u);            // not present
    EXPECT_EQ(Pagemap::zero_pfn_from(kSwapped | kPfn), 0u); // swap entry: low bits are not a PFN
    EXPECT_EQ(Pagemap::zero_pfn_from(0), 0u);
    EXPECT_EQ(Pagemap::zero_pfn_from(kPresent), 0u); // PFN hidden (no CAP_SYS_ADMIN): unknown
}

class PagemapClassify : public testing::Test {
protected:
    void SetUp() override
    {
        auto m = Pagemap::open();
        if (!m)
            GTEST_SKIP() << "Pagemap::open failed: " << m.error().message();
        map_.emplace(std::move(*m));
    }
    const Pagemap& map() const { return *map_; }

private:
    std::optional<Pagemap> map_;
};

TEST_F(PagemapClassify, NotPresentIsNone)
{
    for (bool hint : { false, true }) {
        EXPECT_EQ(map().classify(0, hint), Kind::None);
        EXPECT_EQ(map().classify(kSwapped | kPfn, hint), Kind::None);
        EXPECT_EQ(map().classify(kExclusive | kFileOrShared | kPfn, hint), Kind::None);
    }
}

TEST_F(PagemapClassify, ExclusiveOrFileIsPrivate)
{
    for (bool hint : { false, true }) {
        EXPECT_EQ(map().classify(kPresent | kExclusive | kPfn, hint), Kind::Private);
        EXPECT_EQ(map().classify(kPresent | kExclusive, hint), Kind::Private);
        EXPECT_EQ(map().classify(kPresent | kFileOrShared | kPfn, hint), Kind::Private);
        EXPECT_EQ(map().classify(kPresent | kFileOrShared, hint), Kind::Private);
        if (map().zero_pfn() != 0) { // even at the zero page's PFN
            EXPECT_EQ(map().classify(kPresent | kExclusive | map().zero_pfn(), hint), Kind::Private);
        }
    }
}

// PFN 0 is what an unprivileged process reads: the zero page cannot be
// recognised by PFN, so the runtime's hint decides.
TEST_F(PagemapClassify, HiddenPfnFollowsTheHint)
{
    EXPECT_EQ(map().classify(kPresent, true), Kind::Zero);
    EXPECT_EQ(map().classify(kPresent, false), Kind::Shared);
    EXPECT_EQ(map().classify(kPresent | kSoftDirty, true), Kind::Zero);
    EXPECT_EQ(map().classify(kPresent | kSoftDirty, false), Kind::Shared);
}

// Where the zero PFN was not learned, a visible PFN cannot decide either.
TEST_F(PagemapClassify, UnknownZeroPfnFollowsTheHint)
{
    if (map().zero_pfn() != 0)
        GTEST_SKIP() << "the zero page's PFN is known here (" << map().zero_pfn() << "): see KnownZeroPfnDecides";
    EXPECT_EQ(map().classify(kPresent | kPfn, true), Kind::Zero);
    EXPECT_EQ(map().classify(kPresent | kPfn, false), Kind::Shared);
}

// With a known zero PFN (root, and a kernel that maps the zero page on a
// read fault) the PFN decides and the hint does not matter.
TEST_F(PagemapClassify, KnownZeroPfnDecides)
{
    const uint64_t zero = map().zero_pfn();
    if (zero == 0)
        GTEST_SKIP() << "the zero page's PFN is not known here (PFNs hidden, or reads allocate private pages)";
    const uint64_t other = zero == kPfn ? kPfn + 1 : kPfn;
    for (bool hint : { false, true }) {
        EXPECT_EQ(map().classify(kPresent | zero, hint), Kind::Zero);
        EXPECT_EQ(map().classify(kPresent | other, hint), Kind::Shared);
    }
}

} // namespace
