#include "fault/page_installer.h"

#include <cerrno>
#include <sys/mman.h>

namespace faultline::fault {

namespace {
// EAGAIN means the kernel made partial progress or the address-space layout
// is changing. A few immediate retries cover the first case; after that the
// faulting thread is woken and simply faults again, which cannot hang.
constexpr int kMaxEagainRetries = 8;
}

PageInstaller::PageInstaller(os::Userfaultfd& uffd, size_t page_size, size_t max_pages, bool use_zeropage, InstallerCounters& counters)
    : uffd_(uffd)
    , page_size_(page_size)
    , max_bytes_(max_pages * page_size)
    , use_zeropage_(use_zeropage)
    , counters_(counters)
{
    // The source of every zero-fill copy. PROT_READ and populated now, so
    // that no copy ever takes a fault on it.
    void* p = mmap(nullptr, max_bytes_, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    zeros_ = p == MAP_FAILED ? nullptr : p;
}

PageInstaller::~PageInstaller()
{
    if (zeros_)
        munmap(zeros_, max_bytes_);
}

long PageInstaller::install_chunk(uintptr_t start, size_t len, bool writable, size_t* done) noexcept
{
    if (!writable && use_zeropage_)
        return uffd_.zeropage(start, len, false, done);
    return uffd_.copy(start, zeros_, len, false, done);
}

memory::FaultOutcome PageInstaller::zero_fill(uintptr_t start, size_t len, bool writable, uint64_t* installed) noexcept
{
    *installed = 0;
    uintptr_t at = start;
    uintptr_t end = start + len;
    int eagain = 0;
    while (at < end) {
        size_t chunk = end - at < max_bytes_ ? end - at : max_bytes_;
        size_t done = 0;
        long rc = install_chunk(at, chunk, writable, &done);
        *installed += done / page_size_;
        at += done;
        if (rc == 0)
            continue;
        switch (-rc) {
        case EEXIST:
            // The page at `at` is already there: success for it. Skip it and
            // install the rest of the window.
            counters_.eexist.fetch_add(1, std::memory_order_relaxed);
            at += page_size_;
            break;
        case EAGAIN:
            counters_.eagain_retries.fetch_add(1, std::memory_order_relaxed);
            if (++eagain > kMaxEagainRetries) {
                counters_.pages_installed.fetch_add(*installed, std::memory_order_relaxed);
                return memory::FaultOutcome::Retry;
            }
            break;
        case ENOENT:
        case EFAULT:
            counters_.pages_installed.fetch_add(*installed, std::memory_order_relaxed);
            return memory::FaultOutcome::RegionGone;
        case ESRCH:
            return memory::FaultOutcome::MmGone;
        default:
            counters_.pages_installed.fetch_add(*installed, std::memory_order_relaxed);
            return memory::FaultOutcome::Sigbus;
        }
    }
    counters_.pages_installed.fetch_add(*installed, std::memory_order_relaxed);
    return memory::FaultOutcome::Installed;
}

} // namespace faultline::fault
