#include "runtime/file_regions.h"

#include "memory/objects/private_inode_vm_object.h"
#include "os/fault_injection.h"
#include "support/log.h"
#include "support/try.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <shared_mutex>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>
#include <chrono>
#include <thread>

namespace faultline {

using memory::FileCache;
using memory::InodeVMObject;
using memory::PageState;
using memory::Region;
using memory::SharedInodeVMObject;

namespace {

constexpr unsigned kDefaultReadaheadMin = 1;
constexpr unsigned kDefaultReadaheadMax = 256;
constexpr unsigned kMaxReadahead = 4096;
// Store threads per store (StoreMapOptions::threads).
constexpr unsigned kDefaultStoreThreads = 2;
constexpr unsigned kMaxStoreThreads = 64;
// Pages written per write(2)-sized request during write-back.
constexpr size_t kWriteRunPages = 256;

// The runtime's own descriptor of the file: a new open file description
// (through /proc/self/fd), so that nothing the caller does to theirs — close,
// fcntl, lseek — reaches it, and O_DIRECT can be set on ours alone.
int reopen(int fd, bool writable, bool direct)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int own = ::open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | (direct ? O_DIRECT : 0));
    if (own >= 0)
        return own;
    if (errno == ENOENT && !direct) {
        // No /proc: share the caller's file description (pread/pwrite do
        // not move its offset).
        own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        return own >= 0 ? own : -errno;
    }
    return -errno;
}

struct WriteOp : io::Operation {
    size_t first = 0;
    size_t count = 0;
    size_t bytes = 0;
    int32_t result = 0;
};

void write_done(io::Operation* op, int32_t result) noexcept { static_cast<WriteOp*>(op)->result = result; }

} // namespace

FileRegions::~FileRegions() = default;

Result<size_t> FileRegions::window_size(Access access, size_t length, int64_t offset) const
{
    if (uint8_t(access) & ~uint8_t(Access::ReadWriteExecute))
        return fail(EINVAL, "unknown access bits");
    if (length == 0)
        return fail(EINVAL, "length is zero");
    if (offset < 0 || uint64_t(offset) % page_ != 0)
        return fail(EINVAL, "offset must be a non-negative multiple of the page size");
    if (length > SIZE_MAX - page_)
        return fail(EOVERFLOW, "length overflows");
    const size_t size = (length + page_ - 1) / page_ * page_;
    if (uint64_t(size) > uint64_t(INT64_MAX) - uint64_t(offset))
        return fail(EOVERFLOW, "offset + length overflows");
    if (uint64_t(offset) + size > FileCache::kMaxPages * page_)
        return fail(EOVERFLOW, "the mapping reaches past the largest file or store the runtime caches (16 TiB)");
    return size;
}

Result<std::pair<unsigned, unsigned>> FileRegions::readahead_limits(unsigned min, unsigned max)
{
    const unsigned ra_min = min ? min : kDefaultReadaheadMin;
    const unsigned ra_max = max ? max : std::max(ra_min, kDefaultReadaheadMax);
    if (ra_min > ra_max || ra_max > kMaxReadahead)
        return fail(EINVAL, "readahead must be 1 <= min <= max <= 4096 pages");
    return std::pair { ra_min, ra_max };
}

FileCache::Options FileRegions::cache_options(bool direct_io, bool budgeted) const
{
    FileCache::Options co;
    co.zero_copy = features_.has(os::Feature::Minor);
    // The cheapest way the kernel offers to learn which pages were written
    // (docs/performance.md measured both): asynchronously, or with a
    // write-protect fault per page, or not at all. Under a budget, faults:
    // eviction must be able to stop a write to a page it drops, and an
    // asynchronous write leaves no trace until it is collected
    // (runtime/evictor.h).
    co.tracking = features_.has(os::Feature::WpAsync) && !budgeted ? FileCache::WriteTracking::Async
        : features_.has(os::Feature::WpShmem)         ? FileCache::WriteTracking::Faults
                                                      : FileCache::WriteTracking::None;
    co.direct_io = direct_io;
    co.continue_wp = features_.has(os::Feature::ContinueWp);
    return co;
}

Result<void*> FileRegions::map(int fd, const FileMapOptions& o)
{
    const int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return fail(EBADF, "not an open file descriptor");
    if (fl & O_PATH)
        return fail(EBADF, "the descriptor was opened with O_PATH, which cannot be read");
    struct stat st {};
    if (fstat(fd, &st) != 0)
        return failf(errno, "fstat failed: %s", strerror(errno));
    if (S_ISDIR(st.st_mode))
        return fail(ENODEV, "a directory cannot be mapped");
    if (!S_ISREG(st.st_mode))
        return fail(ENODEV, "only regular files can be mapped (not a pipe, socket or device)");
    const int mode = fl & O_ACCMODE;
    if (mode == O_WRONLY)
        return fail(EACCES, "the descriptor is not open for reading");
    if (o.sharing != Sharing::Shared && o.sharing != Sharing::Private)
        return fail(EINVAL, "unknown sharing");
    const size_t size = TRY(window_size(o.access, o.length, o.offset));
    auto [ra_min, ra_max] = TRY(readahead_limits(o.readahead_min_pages, o.readahead_max_pages));

    const bool shared = o.sharing == Sharing::Shared;
    // As mmap(2): a shared mapping may write only through a descriptor open
    // for reading and writing (and not append-only); a private one may
    // always write its own copy. The region remembers the most it may ever
    // have, so a later protect() cannot exceed the descriptor either.
    const bool fd_writable = mode == O_RDWR && !(fl & O_APPEND);
    const Access max_access = shared && !fd_writable ? Access::ReadExecute : Access::ReadWriteExecute;
    if (!is_subset(o.access, max_access))
        return fail(EACCES, "write access to a shared file mapping needs a descriptor open for reading and writing");

    int own = reopen(fd, mode == O_RDWR, o.direct_io);
    if (own < 0)
        return failf(-own, "cannot open the runtime's own descriptor of the file: %s%s", strerror(-own),
            o.direct_io && own == -EINVAL ? " (the file system does not support O_DIRECT)" : "");
    const Key key { st.st_dev, st.st_ino, nullptr };
    File& file = files_[key];
    if (!file.cache) {
        FileCache::Options co = cache_options(o.direct_io, evictor_.budget() || o.budget);
        auto cache = FileCache::create(own, mode == O_RDWR, page_, co);
        if (!cache) {
            files_.erase(key);
            return std::unexpected(cache.error());
        }
        file.cache = std::move(*cache);
    } else if (mode == O_RDWR && !file.cache->writable()) {
        file.cache->upgrade_fd(own);
    } else {
        close(own);
    }
    return map_view(file, { .shared = shared, .offset = uint64_t(o.offset), .size = size, .address = o.address,
        .access = o.access, .max_access = max_access, .name = o.name, .readahead = { ra_min, ra_max }, .budget = o.budget });
}

Result<void> FileRegions::apply_budget(File& file, bool writes, uint64_t budget)
{
    const bool budgeted = evictor_.budget() || budget;
    if (!budgeted)
        return {};
    const FileCache::Options& co = file.cache->options();
    const bool tracked = co.zero_copy && co.tracking == FileCache::WriteTracking::Faults;
    const bool written = writes || (file.shared && file.shared->ever_writable());
    if (written && !tracked)
        return fail(EOPNOTSUPP,
            co.tracking == FileCache::WriteTracking::Async
                ? "this file is mapped already without a budget, with writes tracked asynchronously, which eviction "
                  "cannot use: map it with its budget first"
                : "evicting written pages under a budget needs write-protect and minor faults on shared memory "
                  "(Linux 5.19; docs/kernels.md)");
    return evictor_.add(file.cache, budget);
}

Result<void*> FileRegions::map_view(File& file, const View& v)
{
    auto result = [&]() -> Result<void*> {
        TRY(file.cache->ensure_size(v.offset + v.size));
        TRY(apply_budget(file, v.shared && has(v.max_access, Access::Write) && has(v.access, Access::Write), v.budget));
        boost::intrusive_ptr<InodeVMObject> object;
        if (v.shared) {
            if (!file.shared)
                file.shared = TRY(SharedInodeVMObject::try_create(file.cache));
            if (file.shared->async_write_tracking() && start_async_)
                TRY(start_async_());
            if (has(v.access, Access::Write))
                file.shared->note_writable();
            object = file.shared;
        } else {
            object = TRY(memory::PrivateInodeVMObject::try_create(file.cache));
        }
        MapOptions mo;
        mo.size = v.size;
        mo.address = v.address;
        mo.access = v.access;
        mo.max_access = v.max_access;
        mo.flags = v.shared ? RegionFlags::Shared : RegionFlags::None;
        mo.name = v.name;
        return mapper_.map(mo, std::move(object), false, size_t(v.offset), { v.readahead.first, v.readahead.second });
    }();
    if (!result)
        prune();
    return result;
}

Result<void*> FileRegions::map_store(std::shared_ptr<Store> store, const StoreMapOptions& o)
{
    if (!store)
        return fail(EINVAL, "the store is null");
    const size_t size = TRY(window_size(o.access, o.length, o.offset));
    auto readahead = TRY(readahead_limits(o.readahead_min_pages, o.readahead_max_pages));
    if (o.threads > kMaxStoreThreads)
        return failf(EINVAL, "at most %u store threads", kMaxStoreThreads);
    // As a shared file mapping of a read-only file: a store that cannot
    // write bounds the region's rights for good.
    const Access max_access = store->writable() ? Access::ReadWriteExecute : Access::ReadExecute;
    if (!is_subset(o.access, max_access))
        return fail(EACCES, "write access to a store region needs a writable store");
    const Key key { 0, 0, store.get() };
    auto found = files_.find(key);
    if (found == files_.end()) {
        auto queue = TRY(io::StoreQueue::create(store, o.threads ? o.threads : kDefaultStoreThreads, FileCache::kSlots));
        FileCache::Options co = cache_options(false, evictor_.budget() || o.budget);
        auto cache = TRY(FileCache::create_for_store(std::move(queue), page_, co));
        found = files_.emplace(key, File { std::move(cache), nullptr }).first;
    }
    (void)found->second.cache->refresh_size();
    return map_view(found->second, { .shared = true, .offset = uint64_t(o.offset), .size = size, .address = o.address,
        .access = o.access, .max_access = max_access, .name = o.name, .readahead = readahead, .budget = o.budget });
}

void FileRegions::prune()
{
    for (auto it = files_.begin(); it != files_.end();) {
        File& f = it->second;
        // Written pages whose write-back failed when their last region was
        // unmapped live only in the cache: forgetting the file would drop
        // them without a word (the unmap succeeded). Keep it — a new region
        // of the file sees them, a sync over them writes them, destruction
        // tries once more — and try again at each prune until one works.
        if (f.unwritten && f.shared && f.shared->use_count() == 1) {
            if (!write_back(*f.shared, 0, FileCache::kMaxPages)) {
                ++it;
                continue;
            }
            f.unwritten = false;
        }
        if (f.shared && f.shared->use_count() == 1)
            f.shared.reset();
        // The evictor holds a reference of its own to an evictable cache.
        if (!f.shared && f.cache && f.cache->eviction() && f.cache->use_count() == 2) {
            evictor_.remove(f.cache.get());
            it = files_.erase(it);
        } else if (!f.shared && f.cache && !f.cache->eviction() && f.cache->use_count() == 1)
            it = files_.erase(it);
        else
            ++it;
    }
}

void FileRegions::protect_everywhere(const SharedInodeVMObject& object, size_t first, size_t count)
{
    std::vector<std::pair<uintptr_t, size_t>> ranges;
    {
        std::shared_lock tree(tree_.lock());
        tree_.for_each([&](Region& r) {
            if (&r.object() != &object)
                return;
            const size_t r_first = r.object_offset() / page_;
            const size_t r_end = r_first + r.size() / page_;
            const size_t lo = std::max(first, r_first), hi = std::min(first + count, r_end);
            if (lo < hi)
                ranges.emplace_back(r.base() + (lo - r_first) * page_, (hi - lo) * page_);
        });
    }
    for (auto [address, len] : ranges) {
        long rc = uffd_.writeprotect(address, len, true, false);
        if (rc < 0)
            log::warn("write-protecting {:#x}+{:#x} before write-back failed: {}", address, len, strerror(int(-rc)));
    }
}

void FileRegions::harvest(SharedInodeVMObject& object, size_t first, size_t end, Region* also)
{
    if (!pagemap_) {
        auto opened = os::Pagemap::open();
        if (!opened) {
            log::error("cannot open /proc/self/pagemap to collect written pages: {}", opened.error().message());
            return;
        }
        pagemap_ = std::make_unique<os::Pagemap>(std::move(*opened));
    }
    std::vector<std::pair<uintptr_t, uintptr_t>> ranges; // (address, file page of that address)
    std::vector<uintptr_t> ends;
    auto consider = [&](Region& r) {
        if (&r.object() != &object)
            return;
        const size_t r_first = r.object_offset() / page_;
        const size_t r_end = r_first + r.size() / page_;
        const size_t lo = std::max(first, r_first), hi = std::min(end, r_end);
        if (lo >= hi)
            return;
        ranges.emplace_back(r.base() + (lo - r_first) * page_, lo);
        ends.push_back(r.base() + (hi - r_first) * page_);
    };
    {
        std::shared_lock tree(tree_.lock());
        tree_.for_each(consider);
    }
    if (also)
        consider(*also);
    FileCache& cache = object.cache();
    // While no region could write, a page the scan calls written was only
    // mapped without protection (no UFFDIO_CONTINUE_MODE_WP): nothing to
    // write back. The scan still protects it. (The first region made
    // writable counts such pages dirty: SharedInodeVMObject::note_writable.)
    const bool writable = object.ever_writable();
    page_region runs[256];
    for (size_t k = 0; k < ranges.size(); ++k) {
        const auto [start, file_page] = ranges[k];
        uintptr_t at = start;
        while (at < ends[k]) {
            uintptr_t walk_end = ends[k];
            auto n = pagemap_->scan_written(at, ends[k], true, runs, 256, &walk_end);
            if (!n) {
                log::error("collecting written pages failed: {}", n.error().message());
                break;
            }
            // Unpopulated pages of the range count as "written" too (they
            // carry no protection); only a page the cache holds can have
            // been written.
            for (size_t i = 0; i < *n; ++i)
                for (uintptr_t a = runs[i].start; a < runs[i].end; a += page_) {
                    const size_t page = file_page + (a - start) / page_;
                    if (writable && cache.states().get(page) == PageState::Present)
                        cache.mark_dirty(page);
                }
            if (walk_end <= at)
                break;
            at = walk_end;
        }
    }
}

Result<void> FileRegions::write_back(SharedInodeVMObject& object, size_t first, size_t end, Region* retired)
{
    FileCache& cache = object.cache();
    if (!cache.writable())
        return {};
    // One writer of a cache's pages at a time: between clearing a page's
    // dirty bit and writing it, the page is clean to anyone who looks, and
    // an evictor that looked then would drop the only copy of the data
    // (runtime/evictor.h takes the same lock around its write-back and
    // drop). It also makes a sync wait for an eviction's writes, so that
    // its fdatasync covers them.
    std::lock_guard writing(cache.writeback_lock());
    const bool tracked = object.tracks_writes();
    // Untracked, every cached page might differ from the file — but only if
    // some region could ever write one.
    if (!tracked && !object.ever_writable())
        return {};
    // Asynchronous tracking: the kernel knows which pages were written;
    // collecting them re-protects them, so a write from now on is seen by
    // the next sync.
    const bool async = object.async_write_tracking();
    const uint64_t size = cache.refresh_size();
    // Never past the end of the file: write-back never extends it.
    end = std::min(end, size_t((size + page_ - 1) / page_));
    if (first >= end)
        return {};
    if (async)
        harvest(object, first, end, retired);
    // Untracked, a page being read counts too once it is cached: in copy
    // mode a thread may have written it already (FileCache::wait_filled).
    if (!tracked)
        cache.wait_filled(first, end - first);
    // The pages to write, as runs: dirty pages where writes are tracked,
    // every cached page where they are not. Only blocks the cache ever
    // populated are looked at.
    std::vector<WriteOp> ops;
    auto flush_run = [&](size_t run_first, size_t run_end) {
        for (size_t at = run_first; at < run_end; at += kWriteRunPages) {
            WriteOp op;
            op.complete = write_done;
            op.first = at;
            op.count = std::min(kWriteRunPages, run_end - at);
            ops.push_back(op);
        }
    };
    cache.states().for_each_marked_span(first, end - first, [&](size_t at, size_t n) {
        size_t run = SIZE_MAX;
        for (size_t i = at; i < at + n; ++i) {
            const bool write = tracked ? cache.dirty(i) : cache.states().get(i) == PageState::Present;
            if (write && run == SIZE_MAX)
                run = i;
            if (!write && run != SIZE_MAX) {
                flush_run(run, i);
                run = SIZE_MAX;
            }
        }
        if (run != SIZE_MAX)
            flush_run(run, at + n);
    });
    if (ops.empty())
        return {};
    // Re-protect before writing: a write from now on faults and dirties its
    // page again, to be written by the next sync; one before it is in the
    // bytes written now.
    if (tracked) {
        for (const WriteOp& op : ops)
            for (size_t i = op.first; i < op.first + op.count; ++i)
                cache.begin_writeback(i);
        if (!async) // collecting re-protected them already
            for (const WriteOp& op : ops)
                protect_everywhere(object, op.first, op.count);
    }
    if (!ring_ && features_.has(os::Feature::IoUring)) {
        if (auto ring = io::Ring::create(256))
            ring_ = std::move(*ring);
    }
    for (WriteOp& op : ops) {
        const uint64_t offset = uint64_t(op.first) * page_;
        op.bytes = size_t(std::min<uint64_t>(uint64_t(op.count) * page_, size - offset));
        if (int injected = os::FaultInjection::take(cache.store() ? os::InjectOp::StoreWrite : os::InjectOp::FileWrite,
                uintptr_t(offset))) {
            op.result = -injected;
            continue;
        }
        if (int ms = os::FaultInjection::take(os::InjectOp::WriteDelay, uintptr_t(offset)))
            usleep(useconds_t(ms) * 1000);
        if (Store* store = cache.store()) {
            // A store writes on this thread (sync, unmap and the evictor may
            // block; a store's write may too).
            int64_t n = store->write(cache.page_bytes(op.first), op.bytes, offset);
            op.result = n < 0 ? int32_t(n < -4095 ? -EIO : n) : int32_t(std::min<int64_t>(n, int64_t(op.bytes)));
            if (op.result >= 0 && size_t(op.result) < op.bytes)
                op.result = -EIO; // a store has no short writes to finish
            continue;
        }
        // The file's partial last page under direct_io cannot go to the
        // ring on the O_DIRECT descriptor (FileCache::write_file).
        if (ring_ && !cache.direct_write_refused(offset, op.bytes)) {
            uint32_t submit = uint32_t(op.bytes);
            if (int cut = os::FaultInjection::take(os::InjectOp::FileWriteShort, uintptr_t(offset)); cut && submit > 1)
                submit -= std::min(submit - 1, uint32_t(cut));
            if (ring_->write(cache.fd(), cache.page_bytes(op.first), submit, offset, &op))
                continue;
        }
        // Without io_uring (or no room in the ring): this API thread writes.
        ssize_t n = cache.write_file(cache.page_bytes(op.first), op.bytes, offset);
        op.result = n < 0 ? -errno : int32_t(n);
    }
    if (ring_)
        (void)ring_->drain();
    int first_error = 0;
    for (const WriteOp& op : ops) {
        size_t done = op.result > 0 ? size_t(op.result) : 0;
        int error = op.result < 0 ? -op.result : 0;
        // A short write: finish it here, which also learns its errno
        // (ENOSPC, EIO).
        while (!error && done < op.bytes) {
            ssize_t n = cache.write_file(cache.page_bytes(op.first) + done, op.bytes - done, uint64_t(op.first) * page_ + done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                error = n < 0 ? errno : EIO;
            else
                done += size_t(n);
        }
        cache.counters().bytes_written.fetch_add(done, std::memory_order_relaxed);
        if (tracked)
            for (size_t i = op.first; i < op.first + op.count; ++i)
                cache.end_writeback(i, !error);
        if (error) {
            // Nothing is dropped: the pages stay dirty for the next sync.
            if (!first_error)
                first_error = error;
        }
    }
    if (first_error)
        return failf(first_error, "writing back to the file failed: %s (the pages stay dirty)", strerror(first_error));
    return {};
}

Result<void> FileRegions::sync(uintptr_t address, size_t size, SyncFlags flags)
{
    constexpr uint32_t kKnown = uint32_t(SyncFlags::Sync) | uint32_t(SyncFlags::Async) | uint32_t(SyncFlags::Invalidate);
    if (uint32_t(flags) & ~kKnown)
        return fail(EINVAL, "unknown sync flags");
    if (has(flags, SyncFlags::Sync) && has(flags, SyncFlags::Async))
        return fail(EINVAL, "Sync and Async together");
    TRY(ops_.validate_range(address, size));
    auto regions = TRY(ops_.covering(address, size, { .allow_immutable = true }));
    for (Region* r : regions)
        if (!dynamic_cast<InodeVMObject*>(&r->object()))
            return failf(EINVAL, "region '%s' is not a file region", r->name().c_str());
    int first_error = 0;
    for (Region* r : regions) {
        auto* object = dynamic_cast<SharedInodeVMObject*>(&r->object());
        if (!object)
            continue; // a private file region: nothing of it reaches the file
        const uintptr_t lo = std::max(address, r->base()), hi = std::min(address + size, r->end());
        const size_t first = (r->object_offset() + (lo - r->base())) / page_;
        const size_t end = first + (hi - lo) / page_;
        if (auto ok = write_back(*object, first, end); !ok && !first_error)
            first_error = ok.error().code();
        FileCache& cache = object->cache();
        if (has(flags, SyncFlags::Sync) && cache.writable())
            if (int error = flush(cache); error && !first_error)
                first_error = error;
        // Clean cached pages go: the next touch reads the file again. Only
        // for a file no region could ever write: a page that is clean now
        // may be written the next instant (with asynchronous write-protect
        // the write leaves no trace until the next harvest), and dropping it
        // would lose that write. msync(MS_INVALIDATE) on Linux keeps written
        // pages for the same reason.
        if (has(flags, SyncFlags::Invalidate) && !object->ever_writable()) {
            // Nothing wrote these pages; a dirty mark here is only the one
            // a page gets when mapped without UFFDIO_CONTINUE_MODE_WP
            // (before 6.4: InodeVMObject::map_cached), and means nothing.
            for (size_t i = first; i < end; ++i)
                if (cache.states().get(i) == PageState::Present) {
                    (void)cache.clear_dirty(i);
                    cache.drop(i, 1);
                }
        }
    }
    if (first_error)
        return failf(first_error, "sync failed: %s (the pages that were not written stay dirty)", strerror(first_error));
    return {};
}

void FileRegions::retire(Region& region)
{
    auto* object = dynamic_cast<SharedInodeVMObject*>(&region.object());
    if (!object || !region.has_been_writable())
        return;
    const size_t first = region.object_offset() / page_;
    if (auto ok = write_back(*object, first, first + region.size() / page_, &region); !ok) {
        log::error("writing back region '{}' on unmap failed: {}; its file's cache keeps the pages for a later "
                   "write-back", region.name(), ok.error().message());
        for (auto& [key, file] : files_)
            if (file.shared.get() == object)
                file.unwritten = true;
    }
}

void FileRegions::wait_for_reads() const noexcept
{
    for (const auto& [key, file] : files_)
        while (file.cache->reads_in_flight() > 0)
            std::this_thread::sleep_for(std::chrono::microseconds(100));
}

int FileRegions::flush(FileCache& cache)
{
    if (Store* store = cache.store()) {
        int rc = store->flush();
        return rc < 0 ? -rc : 0;
    }
    return fdatasync(cache.fd()) == 0 ? 0 : errno;
}

void FileRegions::sync_all()
{
    for (auto& [key, file] : files_) {
        if (!file.shared)
            continue;
        if (auto ok = write_back(*file.shared, 0, FileCache::kMaxPages); !ok)
            log::error("writing back a file at runtime destruction failed: {}", ok.error().message());
        if (file.cache->writable())
            (void)flush(*file.cache);
    }
}

std::vector<FileForkPlan::Run> FileRegions::unwritten_runs(SharedInodeVMObject& object)
{
    FileCache& cache = object.cache();
    const bool tracked = object.tracks_writes();
    std::vector<FileForkPlan::Run> runs;
    cache.states().for_each_marked_span(0, FileCache::kMaxPages, [&](size_t at, size_t n) {
        for (size_t i = at; i < at + n; ++i) {
            const bool differs = tracked ? cache.dirty(i) : cache.states().get(i) == PageState::Present;
            if (!differs)
                continue;
            if (!runs.empty() && runs.back().end == i)
                ++runs.back().end;
            else
                runs.push_back({ i, i + 1 });
        }
    });
    return runs;
}

void FileRegions::prepare_fork() noexcept
{
    fork_plan_.clear();
    if (files_.empty())
        return;
    fork_plan_.set_scan(features_.has(os::Feature::PagemapScan));
    try {
        // The file must hold every byte a region shows before the child
        // maps it. (Not flushed: the child reads the kernel's page cache.)
        // A write racing the fork may land after the write-back: the child
        // then sees the byte from before it, and the write reaches the file
        // at the parent's next write-back — as a write to a shared mapping
        // reaches another process.
        std::map<const FileCache*, std::vector<FileForkPlan::Run>> keep;
        for (auto& [key, file] : files_) {
            if (!file.shared || file.cache->store())
                continue;
            if (auto ok = write_back(*file.shared, 0, FileCache::kMaxPages); !ok) {
                log::error("fork: writing a file's dirty pages back failed ({}); in the child, those pages go on "
                           "viewing this process's cache of the file", ok.error().message());
                keep[file.cache.get()] = unwritten_runs(*file.shared);
            }
        }
        static const std::vector<FileForkPlan::Run> none;
        std::shared_lock tree(tree_.lock());
        tree_.for_each([&](Region& r) {
            auto* object = dynamic_cast<memory::InodeVMObject*>(&r.object());
            if (!object)
                return;
            const FileCache& cache = object->cache();
            FileForkPlan::Entry e;
            e.base = r.base();
            e.size = r.size();
            e.prot = int(r.access());
            e.fd = cache.fd();
            e.offset = r.object_offset();
            e.kind = cache.store() ? FileForkPlan::Kind::Unavailable
                : dynamic_cast<SharedInodeVMObject*>(object) ? FileForkPlan::Kind::Shared
                                                             : FileForkPlan::Kind::Private;
            auto found = keep.find(&cache);
            fork_plan_.add(e, page_, found == keep.end() ? none : found->second);
        });
    } catch (const std::exception& e) {
        // Out of memory: the child views the cache, as without a plan.
        log::error("fork: preparing the file regions for the child failed ({})", e.what());
        fork_plan_.clear();
    }
}

} // namespace faultline
