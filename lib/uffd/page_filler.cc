#include "uffd/page_filler.h"

#include <cerrno>
#include <sys/mman.h>

namespace faultline::uffd {

namespace {
// EAGAIN with progress is the kernel stopping at a page already there (the
// next call then says EEXIST for it); EAGAIN without progress means the
// address-space layout is changing. A few immediate retries cover a brief
// change; after that the faulting thread is woken and simply faults again,
// which cannot hang.
constexpr int kMaxStalls = 8;

FillResult from_errno(long rc, size_t pages) noexcept
{
    FillResult r;
    r.pages = pages;
    r.error = int(-rc);
    switch (-rc) {
    case 0:
    case EEXIST:
        r.status = FillStatus::Done;
        r.error = 0;
        break;
    case EAGAIN:
        r.status = FillStatus::Retry;
        break;
    case ENOENT:
    case EFAULT:
        r.status = FillStatus::RegionGone;
        break;
    case ESRCH:
        r.status = FillStatus::MmGone;
        break;
    default:
        r.status = FillStatus::Failed;
        break;
    }
    return r;
}
} // namespace

PageFiller::PageFiller(Userfaultfd& uffd, size_t page_size, size_t max_pages, bool use_zeropage, FillCounters& counters) noexcept
    : uffd_(uffd)
    , page_size_(page_size)
    , max_bytes_(max_pages * page_size)
    , use_zeropage_(use_zeropage)
    , counters_(counters)
{
    // The source of every zero-fill copy. PROT_READ and populated now (with
    // the shared zero page: it costs no memory), so that no copy ever takes
    // a fault on it.
    void* p = mmap(nullptr, max_bytes_, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    zeros_ = p == MAP_FAILED ? nullptr : p;
}

PageFiller::~PageFiller()
{
    if (zeros_)
        munmap(zeros_, max_bytes_);
}

long PageFiller::issue(Verb verb, uintptr_t dst, const void* src, size_t len, size_t* done) noexcept
{
    switch (verb) {
    case Verb::ZeroPage:
        return uffd_.zeropage(dst, len, false, done);
    case Verb::CopyZeros:
        return uffd_.copy(dst, zeros_, len, false, false, done);
    case Verb::CopyZerosWp:
        return uffd_.copy(dst, zeros_, len, false, true, done);
    case Verb::Copy:
        return uffd_.copy(dst, src, len, false, false, done);
    case Verb::CopyWp:
        return uffd_.copy(dst, src, len, false, true, done);
    case Verb::Continue:
        return uffd_.continue_range(dst, len, false, false, done);
    case Verb::ContinueWp:
        return uffd_.continue_range(dst, len, false, true, done);
    case Verb::Poison:
        *done = 0;
        return uffd_.poison(dst, len, false);
    }
    return -EINVAL;
}

FillResult PageFiller::fill(Verb verb, uintptr_t start, const void* src, size_t len, size_t chunk) noexcept
{
    const bool zeros = verb == Verb::CopyZeros || verb == Verb::CopyZerosWp;
    FillResult result;
    uintptr_t at = start;
    const uintptr_t end = start + len;
    int stalls = 0;
    while (at < end) {
        size_t n = end - at < chunk ? end - at : chunk;
        size_t done = 0;
        const void* from = zeros ? zeros_ : src ? static_cast<const char*>(src) + (at - start) : nullptr;
        long rc = issue(verb, at, from, n, &done);
        result.pages += done / page_size_;
        at += done;
        if (rc == 0)
            continue;
        if (rc == -EEXIST) {
            // The page at `at` is already there: success for it. Skip it and
            // fill the rest of the range.
            counters_.eexist.fetch_add(1, std::memory_order_relaxed);
            at += page_size_;
            continue;
        }
        if (rc == -EAGAIN) {
            counters_.eagain_retries.fetch_add(1, std::memory_order_relaxed);
            if (done == 0 && ++stalls > kMaxStalls)
                break;
            continue;
        }
        if ((rc == -ENOENT || rc == -EFAULT) && n > page_size_) {
            // The kernel fills within one VMA per call; a region can span
            // several (VMAs that could not merge after earlier changes). Go
            // on page by page: only a single page the kernel cannot find
            // means the mapping is really gone.
            chunk = page_size_;
            continue;
        }
        counters_.pages_installed.fetch_add(result.pages, std::memory_order_relaxed);
        return from_errno(rc, result.pages);
    }
    counters_.pages_installed.fetch_add(result.pages, std::memory_order_relaxed);
    if (at < end)
        return from_errno(-EAGAIN, result.pages);
    return result;
}

FillResult PageFiller::zero(uintptr_t start, size_t len, ZeroFill how) noexcept
{
    switch (how) {
    case ZeroFill::SharedZeroPage:
        // UFFDIO_ZEROPAGE takes any length; the zero buffer bounds copies.
        return use_zeropage_ ? fill(Verb::ZeroPage, start, nullptr, len, len) : fill(Verb::CopyZeros, start, nullptr, len, max_bytes_);
    case ZeroFill::Private:
        return fill(Verb::CopyZeros, start, nullptr, len, max_bytes_);
    case ZeroFill::PrivateWriteProtected:
        return fill(Verb::CopyZerosWp, start, nullptr, len, max_bytes_);
    }
    return from_errno(-EINVAL, 0);
}

FillResult PageFiller::copy(uintptr_t dst, const void* src, size_t len, bool write_protect) noexcept
{
    return fill(write_protect ? Verb::CopyWp : Verb::Copy, dst, src, len, len);
}

FillResult PageFiller::map_cached(uintptr_t dst, size_t len, bool write_protect) noexcept
{
    return fill(write_protect ? Verb::ContinueWp : Verb::Continue, dst, nullptr, len, len);
}

FillResult PageFiller::poison(uintptr_t start, size_t len) noexcept
{
    return fill(Verb::Poison, start, nullptr, len, len);
}

FillResult PageFiller::write_protect(uintptr_t start, size_t len, bool protect) noexcept
{
    // Not an mfill operation: it changes pages that are there (and, with
    // WP_UNPOPULATED, marks those that are not); no partial progress.
    long rc = uffd_.writeprotect(start, len, protect, false);
    for (int stalls = 0; rc == -EAGAIN && stalls < kMaxStalls; ++stalls) {
        counters_.eagain_retries.fetch_add(1, std::memory_order_relaxed);
        rc = uffd_.writeprotect(start, len, protect, false);
    }
    return from_errno(rc, 0);
}

} // namespace faultline::uffd
