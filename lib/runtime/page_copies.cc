#include "runtime/page_copies.h"

#include "os/pagemap.h"
#include "os/virtual_memory.h"
#include "support/try.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace faultline {

using memory::Region;

namespace {
// Attempts at installing one page where a page appeared first (EEXIST) and
// could not be written over: the page is dropped and copied again.
constexpr int kCopyAttempts = 8;
}

Result<void> PageCopies::copy_written(const Region& from, uintptr_t to, const std::function<bool(size_t)>& copyable)
{
    auto pagemap = TRY(os::Pagemap::open(false));
    const bool scan = features_.has(os::Feature::PagemapScan);
    const uintptr_t end = from.end();
    for (uintptr_t at = from.base(); at < end;) {
        auto [first, last] = TRY(pagemap.next_anonymous_run(at, end, scan));
        if (first >= end)
            break;
        if (copyable) {
            // Only the run's first stretch of copyable pages now; the rest
            // on the next turn.
            while (first < last && !copyable((first - from.base()) / page_))
                first += page_;
            uintptr_t stop = first;
            while (stop < last && copyable((stop - from.base()) / page_))
                stop += page_;
            if (first == last) {
                at = last;
                continue;
            }
            last = stop;
        }
        // UFFDIO_COPY reads the source through this process's page tables: a
        // write racing the clone may or may not be in it, as with fork().
        int attempts = 0;
        uintptr_t contested = 0;
        std::vector<char> bounce;
        bool by_page = false;
        for (uintptr_t p = first; p < last;) {
            const uintptr_t dst = to + (p - from.base());
            size_t done = 0;
            long rc = uffd_.copy(dst, reinterpret_cast<const void*>(p), by_page ? page_ : last - p, false, false, &done);
            p += done;
            if (rc == 0)
                continue;
            if (rc == -EFAULT) {
                // The source is a mapping the program made unreadable
                // (Access::None): its page is read as a debugger would and
                // installed from that copy (found by the c_api fuzzer).
                if (bounce.empty())
                    bounce.resize(page_);
                if (int r = os::read_own_memory(p, bounce.data(), page_); r < 0)
                    return failf(-r, "reading the written pages failed: %s", strerror(-r));
                TRY(install_copy(to + (p - from.base()), bounce.data()));
                p += page_;
                continue;
            }
            if (rc == -EAGAIN)
                continue; // the address space changed under the copy: go on from where it stopped
            if (rc == -EEXIST) {
                // The region has a page there (its own, which a rollback
                // overwrites, or the cache's, which a reader mapped first):
                // the bytes are written through the mapping instead.
                if (write_page(dst, reinterpret_cast<const char*>(p))) {
                    p += page_;
                    continue;
                }
                // Not writable (a snapshot, read-only) or no kernel copy:
                // drop the page and copy ours again. The attempts are this
                // page's (counted over the whole run, a read-only region
                // whose every page had been read once failed with EBUSY
                // after 8 pages — found by the c_api fuzzer).
                if (p != contested) {
                    contested = p;
                    attempts = 0;
                }
                if (++attempts > kCopyAttempts)
                    return fail(EBUSY, "copying a written page into the region kept losing to its readers");
                if (int d = os::discard(dst, page_); d < 0)
                    return failf(-d, "madvise failed: %s", strerror(-d));
                continue;
            }
            if (rc == -ENOENT && !by_page && last - p > page_) {
                // The kernel copies within one VMA per call, and the region
                // may span several: pieces of the arena with different
                // histories do not always merge (found by the c_api fuzzer:
                // a clone whose copy failed with ENOENT). Page by page, only
                // a page the kernel cannot find is an error.
                by_page = true;
                continue;
            }
            return failf(int(-rc), "copying the written pages failed: %s", strerror(int(-rc)));
        }
        at = last;
    }
    return {};
}

Result<void> PageCopies::drop_written(const Region& region, const Region* except)
{
    auto pagemap = TRY(os::Pagemap::open(false));
    const bool scan = features_.has(os::Feature::PagemapScan);
    auto drop = [&](uintptr_t from, uintptr_t to) -> Result<void> {
        if (from < to)
            if (int rc = os::discard(from, to - from); rc < 0)
                return failf(-rc, "madvise failed: %s", strerror(-rc));
        return {};
    };
    for (uintptr_t at = region.base(); at < region.end();) {
        auto [first, last] = TRY(pagemap.next_anonymous_run(at, region.end(), scan));
        if (first >= region.end())
            break;
        // Within the run, only the gaps between `except`'s own pages.
        uintptr_t from = first;
        while (except && from < last) {
            const uintptr_t shift = except->base() - region.base();
            auto [kf, kl] = TRY(pagemap.next_anonymous_run(from + shift, last + shift, scan));
            TRY(drop(from, std::min(last, kf - shift)));
            from = std::min(last, kl - shift);
        }
        TRY(drop(from, last));
        at = last;
    }
    return {};
}

Result<void> PageCopies::install_copy(uintptr_t to, const char* from) const
{
    for (int attempt = 0; attempt <= kCopyAttempts; ++attempt) {
        size_t done = 0;
        long rc = uffd_.copy(to, from, page_, false, false, &done);
        if (rc == 0 || (rc == -EEXIST && write_page(to, from)))
            return {};
        if (rc == -EAGAIN)
            continue;
        if (rc != -EEXIST)
            return failf(int(-rc), "copying the written pages failed: %s", strerror(int(-rc)));
        if (int d = os::discard(to, page_); d < 0)
            return failf(-d, "madvise failed: %s", strerror(-d));
    }
    return fail(EBUSY, "copying a written page into the region kept losing to its readers");
}

bool PageCopies::write_page(uintptr_t to, const char* from) const noexcept
{
    // The kernel writes (process_vm_writev of this process): it takes the
    // page's copy-on-write like any write, and fails (EFAULT) rather than
    // crash on a page that is not writable. ThreadSanitizer does not see it:
    // a reader racing a rollback is the program's business (docs/cow.md).
    iovec local { const_cast<char*>(from), page_ };
    iovec remote { reinterpret_cast<void*>(to), page_ };
    return syscall(SYS_process_vm_writev, getpid(), &local, 1, &remote, 1, 0) == long(page_);
}

} // namespace faultline
