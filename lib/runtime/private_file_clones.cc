#include "runtime/private_file_clones.h"

#include "os/pagemap.h"
#include "os/virtual_memory.h"
#include "support/log.h"
#include "support/try.h"

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

namespace faultline {

using memory::PrivateInodeVMObject;
using memory::Region;

namespace {
// Attempts at installing one run when a reader of the region mapped the
// cache's page there first (EEXIST): the page is dropped and copied again.
constexpr int kCopyAttempts = 8;
}

Result<void*> PrivateFileClones::clone(Region& source, const std::string& name, bool read_only)
{
    auto& from = static_cast<PrivateInodeVMObject&>(source.object());
    auto object = TRY(PrivateInodeVMObject::try_create(from.cache_ptr()));
    MapOptions o;
    o.size = source.size();
    o.access = read_only ? Access::Read : source.access();
    o.max_access = read_only ? Access::Read : source.max_access();
    o.name = name.empty() ? source.name() : name;
    void* at = TRY(mapper_.map(o, std::move(object), false, source.object_offset(), source.readahead()));
    if (auto copied = copy_written(source, uintptr_t(at)); !copied) {
        if (auto undone = mapper_.unmap(uintptr_t(at), source.size()); !undone)
            log::error("clone: unmapping a half-made clone of a file region failed: {}", undone.error().message());
        return std::unexpected(copied.error());
    }
    return at;
}

Result<void> PrivateFileClones::rollback(Region& region, const Region& snapshot)
{
    // In this order, so that no page shows the file's bytes in between
    // where both the region and the snapshot hold their own: first the
    // region's written pages the snapshot did not write are dropped (they
    // read the file again, as the snapshot does there), then the snapshot's
    // written pages are put in, over what the region holds.
    TRY(drop_written(region, &snapshot));
    return copy_written(snapshot, region.base());
}

Result<void> PrivateFileClones::copy_written(const Region& from, uintptr_t to)
{
    auto pagemap = TRY(os::Pagemap::open(false));
    const bool scan = features_.has(os::Feature::PagemapScan);
    const uintptr_t end = from.end();
    for (uintptr_t at = from.base(); at < end;) {
        auto [first, last] = TRY(pagemap.next_anonymous_run(at, end, scan));
        if (first >= end)
            break;
        // UFFDIO_COPY reads the source through this process's page tables: a
        // write racing the clone may or may not be in it, as with fork().
        int attempts = 0;
        for (uintptr_t p = first; p < last;) {
            const uintptr_t dst = to + (p - from.base());
            size_t done = 0;
            long rc = uffd_.copy(dst, reinterpret_cast<const void*>(p), last - p, false, false, &done);
            p += done;
            if (rc == 0)
                break;
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
                // drop the page and copy ours again.
                if (++attempts > kCopyAttempts)
                    return fail(EBUSY, "copying a written page into the region kept losing to its readers");
                if (int d = os::discard(dst, page_); d < 0)
                    return failf(-d, "madvise failed: %s", strerror(-d));
                continue;
            }
            return failf(int(-rc), "copying the written pages failed: %s", strerror(int(-rc)));
        }
        at = last;
    }
    return {};
}

Result<void> PrivateFileClones::drop_written(const Region& region, const Region* except)
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

bool PrivateFileClones::write_page(uintptr_t to, const char* from) const noexcept
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
