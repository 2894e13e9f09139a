#include "os/pagemap.h"

#include "os/virtual_memory.h"
#include "support/try.h"

#include <algorithm>

#include <cerrno>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace faultline::os {

uint64_t Pagemap::zero_pfn_from(uint64_t e)
{
    if (!present(e) || exclusive(e) || file_or_shared(e))
        return 0;
    return pfn(e);
}

Result<Pagemap> Pagemap::open(bool learn_zero_pfn)
{
    int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(errno, "cannot open /proc/self/pagemap");
    Pagemap map(fd);
    if (!learn_zero_pfn)
        return map;
    // Learn the zero page's PFN from a fresh anonymous page that was only
    // read — where that maps the zero page, and where PFNs are visible.
    void* probe = mmap(nullptr, page_size(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe != MAP_FAILED) {
        volatile const char* c = static_cast<const char*>(probe);
        (void)*c;
        uint64_t entry = 0;
        if (map.read(uintptr_t(probe), 1, &entry))
            map.zero_pfn_ = zero_pfn_from(entry);
        munmap(probe, page_size());
    }
    return map;
}

Pagemap::Pagemap(Pagemap&& other) noexcept
    : fd_(other.fd_)
    , zero_pfn_(other.zero_pfn_)
{
    other.fd_ = -1;
}

Pagemap::~Pagemap()
{
    if (fd_ >= 0)
        ::close(fd_);
}

Result<void> Pagemap::read(uintptr_t addr, size_t pages, uint64_t* out) const
{
    size_t done = 0;
    const size_t bytes = pages * sizeof(uint64_t);
    off_t off = off_t(addr / page_size() * sizeof(uint64_t));
    while (done < bytes) {
        ssize_t n = pread(fd_, reinterpret_cast<char*>(out) + done, bytes - done, off + off_t(done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail(n < 0 ? errno : EIO, "reading /proc/self/pagemap failed");
        done += size_t(n);
    }
    return {};
}

namespace {
// One PAGEMAP_SCAN over [start, end) with the masks in `arg`.
Result<size_t> run_scan(int fd, pm_scan_arg& arg, uintptr_t start, uintptr_t end, page_region* out, size_t max,
    uintptr_t* walk_end, const char* what)
{
    arg.size = sizeof arg;
    arg.start = start;
    arg.end = end;
    arg.vec = uintptr_t(out);
    arg.vec_len = max;
    long n = ioctl(fd, PAGEMAP_SCAN, &arg);
    if (n < 0)
        return fail(errno, what);
    if (walk_end)
        *walk_end = uintptr_t(arg.walk_end);
    return size_t(n);
}
} // namespace

Result<size_t> Pagemap::scan(uintptr_t start, uintptr_t end, page_region* out, size_t max, uintptr_t* walk_end) const
{
    pm_scan_arg arg {};
    arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
    arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO;
    return run_scan(fd_, arg, start, end, out, max, walk_end, "PAGEMAP_SCAN failed");
}

Result<size_t> Pagemap::scan_written(uintptr_t start, uintptr_t end, bool reprotect, page_region* out, size_t max,
    uintptr_t* walk_end) const
{
    pm_scan_arg arg {};
    arg.flags = reprotect ? PM_SCAN_WP_MATCHING : 0;
    // Present and written: a page never mapped carries no protection and
    // would count as written too.
    arg.category_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT;
    arg.return_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT;
    return run_scan(fd_, arg, start, end, out, max, walk_end, "PAGEMAP_SCAN for written pages failed");
}

Result<size_t> Pagemap::scan_anonymous(uintptr_t start, uintptr_t end, page_region* out, size_t max,
    uintptr_t* walk_end) const
{
    pm_scan_arg arg {};
    // category_inverted flips PAGE_IS_FILE before category_mask requires
    // it: "not a file page".
    arg.category_inverted = PAGE_IS_FILE;
    arg.category_mask = PAGE_IS_FILE;
    arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
    arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
    return run_scan(fd_, arg, start, end, out, max, walk_end, "PAGEMAP_SCAN for anonymous pages failed");
}

Result<std::pair<uintptr_t, uintptr_t>> Pagemap::next_anonymous_run(uintptr_t start, uintptr_t end, bool scan) const noexcept
{
    const size_t page = page_size();
    if (scan) {
        page_region run {};
        uintptr_t walk_end = 0;
        const size_t n = TRY(scan_anonymous(start, end, &run, 1, &walk_end));
        if (n == 1)
            return std::pair<uintptr_t, uintptr_t> { run.start, run.end };
        return std::pair<uintptr_t, uintptr_t> { end, end };
    }
    constexpr size_t kEntries = 512;
    uint64_t entries[kEntries];
    uintptr_t first = end;
    for (uintptr_t at = start; at < end;) {
        const size_t count = std::min(kEntries, (end - at) / page);
        TRY(read(at, count, entries));
        for (size_t i = 0; i < count; ++i) {
            const uint64_t e = entries[i];
            const bool anonymous = (present(e) || swapped(e)) && !file_or_shared(e);
            if (first == end && anonymous)
                first = at + i * page;
            else if (first != end && !anonymous)
                return std::pair<uintptr_t, uintptr_t> { first, at + i * page };
        }
        at += count * page;
    }
    return std::pair<uintptr_t, uintptr_t> { first, end };
}

bool Pagemap::scan_available() noexcept
{
    int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    void* p = mmap(nullptr, page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool ok = false;
    if (p != MAP_FAILED) {
        static_cast<volatile char*>(p)[0] = 1;
        page_region run {};
        pm_scan_arg arg {};
        arg.size = sizeof arg;
        arg.start = uintptr_t(p);
        arg.end = uintptr_t(p) + page_size();
        arg.vec = uintptr_t(&run);
        arg.vec_len = 1;
        arg.category_anyof_mask = PAGE_IS_PRESENT;
        arg.return_mask = PAGE_IS_PRESENT;
        ok = ioctl(fd, PAGEMAP_SCAN, &arg) == 1 && run.start == uintptr_t(p) && (run.categories & PAGE_IS_PRESENT);
        munmap(p, page_size());
    }
    ::close(fd);
    return ok;
}

Pagemap::Kind Pagemap::classify(uint64_t e, bool installed_zero) const
{
    if (!present(e))
        return Kind::None;
    if (exclusive(e) || file_or_shared(e))
        return Kind::Private;
    if (zero_pfn_ != 0 && pfn(e) != 0)
        return pfn(e) == zero_pfn_ ? Kind::Zero : Kind::Shared;
    return installed_zero ? Kind::Zero : Kind::Shared;
}

} // namespace faultline::os
