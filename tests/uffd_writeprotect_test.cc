// Userfaultfd::writeprotect against real memory, without a runtime around it.
#include "os/fault_injection.h"
#include "os/pagemap.h"
#include "uffd/userfaultfd.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <sys/mman.h>
#include <vector>

namespace faultline::testing {
namespace {

constexpr size_t kPage = 4096;

// Older kernels (6.1 among them) refuse a write-protect range that crosses
// from one VMA into another with ENOENT, even when both are registered, and
// a region can span VMAs that did not merge. The wrapper then protects the
// range page by page. This kernel accepts such a range, so the refusal is
// injected once, for the whole range: every page must still end protected
// (a page left writable would let a write go unseen by sync or eviction).
TEST(UffdWriteProtect, ARangeCrossingVmasThatTheKernelRefusesIsProtectedPageByPage)
{
    auto uffd = uffd::Userfaultfd::open(UffdMode::Auto, {});
    if (!uffd)
        GTEST_SKIP() << "userfaultfd unavailable: " << uffd.error().message();
    if (!uffd->features().has(os::Feature::WriteProtect))
        GTEST_SKIP() << "write-protect faults on anonymous memory are not available (5.7)";
    constexpr size_t kPages = 8;
    void* mem = mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto* bytes = static_cast<char*>(mem);
    std::memset(bytes, 0x5a, kPages * kPage);
    auto registered = uffd->register_range(uintptr_t(mem), kPages * kPage, uffd::Mode::Missing | uffd::Mode::WriteProtect);
    ASSERT_TRUE(registered) << registered.error().message();
    // A VMA flag only the second half has: two VMAs, both registered.
    ASSERT_EQ(madvise(bytes + kPages / 2 * kPage, kPages / 2 * kPage, MADV_DONTFORK), 0) << strerror(errno);

    os::FaultInjection::arm(os::InjectOp::WriteProtect, ENOENT, 1);
    const long rc = uffd->writeprotect(uintptr_t(mem), kPages * kPage, true, false);
    EXPECT_EQ(os::FaultInjection::taken(os::InjectOp::WriteProtect), 1);
    os::FaultInjection::disarm_all();
    EXPECT_EQ(rc, 0) << strerror(int(-rc));

    auto pagemap = os::Pagemap::open();
    ASSERT_TRUE(pagemap) << pagemap.error().message();
    std::vector<uint64_t> entries(kPages);
    ASSERT_TRUE(pagemap->read(uintptr_t(mem), kPages, entries.data()));
    for (size_t page = 0; page < kPages; ++page)
        EXPECT_TRUE(os::Pagemap::write_protected(entries[page])) << "page " << page << " was left writable";

    // A page the kernel cannot find (injected: the first page, after the
    // whole range) is reported, and the others are still done.
    ASSERT_EQ(uffd->writeprotect(uintptr_t(mem), kPages * kPage, false, true), 0);
    os::FaultInjection::arm(os::InjectOp::WriteProtect, ENOENT, 2);
    EXPECT_EQ(uffd->writeprotect(uintptr_t(mem), kPages * kPage, true, false), -ENOENT);
    os::FaultInjection::disarm_all();
    ASSERT_TRUE(pagemap->read(uintptr_t(mem), kPages, entries.data()));
    for (size_t page = 1; page < kPages; ++page)
        EXPECT_TRUE(os::Pagemap::write_protected(entries[page])) << "page " << page << " was left writable";
    munmap(mem, kPages * kPage);
}

} // namespace
} // namespace faultline::testing
