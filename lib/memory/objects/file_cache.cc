#include "memory/objects/file_cache.h"

#include "memory/lazy_table.h"
#include "os/fault_injection.h"

#include "support/try.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace faultline::memory {

namespace {

std::atomic<uint8_t>* map_bytes(size_t n) noexcept { return map_lazy_table<std::atomic<uint8_t>>(n); }

} // namespace

FileCache::FileCache(int fd, bool writable, size_t page_size, Options options, PageStates states,
    std::atomic<uint8_t>* dirty, std::atomic<uint8_t>* ahead)
    : fd_(fd)
    , writable_(writable)
    , page_size_(page_size)
    , options_(options)
    , states_(std::move(states))
    , dirty_(dirty)
    , ahead_(ahead)
{
    for (Slot& s : slots_) {
        s.op.complete = &FileCache::read_done;
        s.cache = this;
    }
}

Result<boost::intrusive_ptr<FileCache>> FileCache::create(int fd, bool writable, size_t page_size, Options options)
{
    // Whatever fails, the descriptor handed over is closed (create_common
    // takes it over from here on).
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        const int error = errno;
        close(fd);
        return failf(error, "fstat failed: %s", strerror(error));
    }
    auto cache = TRY(create_common(fd, writable, page_size, options));
    cache->device_ = st.st_dev;
    cache->inode_ = st.st_ino;
    cache->file_size_.store(uint64_t(st.st_size));
    return cache;
}

Result<boost::intrusive_ptr<FileCache>> FileCache::create_for_store(std::shared_ptr<io::StoreQueue> queue,
    size_t page_size, Options options)
{
    const bool writable = queue->store().writable();
    // O_DIRECT is a file's matter.
    options.direct_io = false;
    auto cache = create_common(-1, writable, page_size, options);
    if (!cache) {
        queue->shutdown();
        return cache;
    }
    (*cache)->file_size_.store(queue->store().size());
    (*cache)->store_ = std::move(queue);
    return cache;
}

Result<boost::intrusive_ptr<FileCache>> FileCache::create_common(int fd, bool writable, size_t page_size, Options options)
{
    struct Closer {
        int fd;
        ~Closer()
        {
            if (fd >= 0)
                close(fd);
        }
    } closer { fd };
    auto states = PageStates::create(kMaxPages);
    if (!states)
        return std::unexpected(states.error());
    std::atomic<uint8_t>* dirty = map_bytes(kMaxPages);
    std::atomic<uint8_t>* ahead = dirty ? map_bytes(kMaxPages) : nullptr;
    if (!ahead) {
        if (dirty)
            munmap(dirty, kMaxPages);
        return fail(ENOMEM, "cannot reserve the file cache's page tables");
    }
    boost::intrusive_ptr<FileCache> cache(new (std::nothrow) FileCache(fd, writable, page_size, options, std::move(*states), dirty, ahead));
    if (!cache) {
        munmap(dirty, kMaxPages);
        munmap(ahead, kMaxPages);
        return fail(ENOMEM, "out of memory for a file cache");
    }
    closer.fd = -1;
    cache->memfd_ = memfd_create("faultline-file", MFD_CLOEXEC);
    if (cache->memfd_ < 0)
        return failf(errno, "memfd_create failed: %s", strerror(errno));
    if (!options.zero_copy) {
        void* p = mmap(nullptr, kSlots * kCopyModeReadPages * page_size, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return failf(errno, "cannot map the staging buffers: %s", strerror(errno));
        cache->staging_ = static_cast<char*>(p);
        for (size_t i = 0; i < kSlots; ++i)
            cache->slots_[i].staging = cache->staging_ + i * kCopyModeReadPages * page_size;
    }
    return cache;
}

FileCache::~FileCache()
{
    // No read is in flight (each holds a reference), but this may run on a
    // store thread, from the completion that dropped the last one.
    if (store_)
        store_->shutdown();
    // The pages go with the memfd: the runtime's budget no longer holds
    // them (it outlives every cache: runtime/evictor.h).
    if (global_budget_)
        global_budget_->uncharge(cached_pages_.load());
    for (auto& [base, bytes] : aliases_)
        munmap(base, bytes);
    if (staging_)
        munmap(staging_, kSlots * kCopyModeReadPages * page_size_);
    munmap(dirty_, kMaxPages);
    munmap(ahead_, kMaxPages);
    if (memfd_ >= 0)
        close(memfd_);
    if (fd_ >= 0)
        close(fd_);
}

Result<void> FileCache::ensure_size(size_t bytes)
{
    bytes = (bytes + page_size_ - 1) / page_size_ * page_size_;
    if (bytes > kMaxPages * page_size_)
        return fail(EFBIG, "the mapping reaches past the largest file the runtime caches (16 TiB)");
    if (bytes <= memfd_bytes_)
        return {};
    // Grow geometrically: the memfd's size costs nothing, and every growth
    // is a new alias mapping that stays until the cache dies.
    size_t grown = std::max(bytes, std::min(2 * memfd_bytes_, kMaxPages * page_size_));
    if (ftruncate(memfd_, off_t(grown)) != 0)
        return failf(errno, "sizing the file cache failed: %s", strerror(errno));
    void* p = mmap(nullptr, grown, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
    if (p == MAP_FAILED)
        return failf(errno, "mapping the file cache failed: %s", strerror(errno));
    aliases_.emplace_back(static_cast<char*>(p), grown);
    alias_bytes_.store(grown, std::memory_order_release);
    alias_.store(static_cast<char*>(p), std::memory_order_release);
    memfd_bytes_ = grown;
    return {};
}

void FileCache::upgrade_fd(int fd) noexcept
{
    // Reads in flight keep using the old descriptor number only until their
    // submission; the kernel holds its own reference from then on.
    int old = fd_;
    fd_ = fd;
    writable_ = true;
    if (old >= 0)
        close(old);
}

uint64_t FileCache::file_size() noexcept
{
    // A store's size is its code, which a handler thread never runs: the
    // size last seen (refresh_size()) is the fault path's.
    if (store_)
        return file_size_.load(std::memory_order_relaxed);
    struct stat st {};
    if (fstat(fd_, &st) == 0)
        file_size_.store(uint64_t(st.st_size), std::memory_order_relaxed);
    return file_size_.load(std::memory_order_relaxed);
}

bool FileCache::direct_write_refused(uint64_t offset, size_t bytes) const noexcept
{
    // The flags are those of the descriptor in use: a later mapping of the
    // file may have swapped in one opened without (or with) O_DIRECT.
    return ((offset | bytes) & (page_size_ - 1)) != 0 && fd_ >= 0 && (fcntl(fd_, F_GETFL) & O_DIRECT) != 0;
}

ssize_t FileCache::write_file(const void* data, size_t bytes, uint64_t offset) noexcept
{
    if (int cut = os::FaultInjection::take(os::InjectOp::FileWriteShort, uintptr_t(offset)); cut && bytes > 1)
        bytes -= std::min(bytes - 1, size_t(cut));
    if (!direct_write_refused(offset, bytes))
        return pwrite(fd_, data, bytes, off_t(offset));
    // A new open file description without O_DIRECT (the flag is per
    // description: clearing it on ours would turn racing reads buffered).
    // An O_DIRECT descriptor exists only where /proc does
    // (runtime/file_regions.cc, reopen). fdatasync on either descriptor
    // flushes the file, so sync's promise covers this write too.
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd_);
    int buffered = ::open(path, O_WRONLY | O_CLOEXEC);
    if (buffered < 0)
        return -1;
    ssize_t n = pwrite(buffered, data, bytes, off_t(offset));
    const int error = errno;
    close(buffered);
    errno = error;
    return n;
}

uint64_t FileCache::refresh_size() noexcept
{
    if (store_)
        file_size_.store(store_->store().size(), std::memory_order_relaxed);
    return file_size();
}

FileCache::Slot* FileCache::slot_covering(size_t page) noexcept
{
    for (Slot& s : slots_)
        if (s.busy && s.first <= page && page < s.first + s.count)
            return &s;
    return nullptr;
}

FileCache::Fetch FileCache::fetch(size_t page, size_t window_first, size_t window_count, PendingToken token,
    CompletionPort* port, IoPort* io) noexcept
{
    Slot* slot = nullptr;
    size_t first = page, last = page + 1;
    {
        std::lock_guard guard(slots_lock_);
        switch (states_.get(page)) {
        case PageState::Present:
        case PageState::ZeroMapped:
            return Fetch::Present;
        case PageState::Filling: {
            // Join the read in flight: its completion posts this token too.
            Slot* reading = slot_covering(page);
            if (!reading || reading->waiters == kMaxWaiters || !token.valid() || !port)
                return Fetch::Retry;
            reading->tokens[reading->waiters] = token;
            reading->pages[reading->waiters] = page;
            reading->ports[reading->waiters] = port;
            ++reading->waiters;
            return Fetch::Pending;
        }
        case PageState::Unpopulated:
            break;
        }
        const uint64_t size = file_size_.load(std::memory_order_relaxed);
        const size_t end_page = size_t((size + page_size_ - 1) / page_size_);
        if (page >= end_page)
            return Fetch::PastEnd;
        if (!token.valid() || !port)
            return Fetch::Retry;
        for (Slot& s : slots_)
            if (!s.busy) {
                slot = &s;
                break;
            }
        if (!slot)
            return Fetch::Retry;
        // The run of absent pages around the fault, within the readahead
        // window and the file; pages are claimed (Filling) so that faults on
        // them join this read.
        const size_t window_end = std::min(window_first + window_count, end_page);
        while (first > window_first && states_.get(first - 1) == PageState::Unpopulated)
            --first;
        while (last < window_end && states_.get(last) == PageState::Unpopulated)
            ++last;
        if (!options_.zero_copy && last - first > kCopyModeReadPages) {
            first = std::max(first, page + 1 > kCopyModeReadPages ? page + 1 - kCopyModeReadPages : 0);
            last = std::min(last, first + kCopyModeReadPages);
        }
        // Under a budget, the read takes what room there is, the faulting
        // page first; with none, the fault waits for the evictor.
        PageBudget* full = nullptr;
        const size_t got = charge(last - first, 1, &full);
        if (got == 0)
            return full->park(token, port) ? Fetch::Pending : Fetch::Retry;
        if (got < last - first) {
            first = std::max(first, std::min(page, last - got));
            last = first + got;
        }
        claim_run(*slot, first, last);
        slot->waiters = 1;
        slot->tokens[0] = token;
        slot->pages[0] = page;
        slot->ports[0] = port;
    }
    return submit(*slot, page, io) ? Fetch::Pending : Fetch::Retry;
}

void FileCache::claim_run(Slot& slot, size_t first, size_t last) noexcept
{
    for (size_t i = first; i < last; ++i)
        (void)states_.claim(i);
    slot.busy = true;
    slot.first = first;
    slot.count = last - first;
    slot.waiters = 0;
}

bool FileCache::submit(Slot& slot, size_t fault_page, IoPort* io) noexcept
{
    const size_t first = slot.first, count = slot.count;
    for (size_t i = first; i < first + count; ++i)
        if (i != fault_page)
            ahead_[i].store(1, std::memory_order_relaxed);
    char* target = options_.zero_copy ? alias_.load(std::memory_order_acquire) + first * page_size_ : slot.staging;
    // Keep the cache alive until the read completes, whatever happens to
    // the regions meanwhile.
    intrusive_ptr_add_ref(this);
    in_flight_.fetch_add(1, std::memory_order_acq_rel);
    // A store's reads go to its own threads: its code may block, and a
    // handler must not.
    const bool queued = store_ ? store_->read(target, count * page_size_, uint64_t(first) * page_size_, &slot.op)
                               : io && io->read(fd_, target, count * page_size_, uint64_t(first) * page_size_, &slot.op);
    if (!queued) {
        in_flight_.fetch_sub(1, std::memory_order_acq_rel);
        {
            std::lock_guard guard(slots_lock_);
            states_.settle(first, count, PageState::Unpopulated);
            for (size_t i = first; i < first + count; ++i)
                ahead_[i].store(0, std::memory_order_relaxed);
            uncharge(count);
            slot.busy = false;
            slot.waiters = 0;
        }
        intrusive_ptr_release(this); // never the last reference: the caller's region holds one
        return false;
    }
    counters_.reads.fetch_add(1, std::memory_order_relaxed);
    counters_.readahead_pages.fetch_add(count - (fault_page >= first && fault_page < first + count), std::memory_order_relaxed);
    return true;
}

size_t FileCache::fetch_ahead(size_t first, size_t count, IoPort* io) noexcept
{
    if ((!io && !store_) || count == 0)
        return 0;
    Slot* slot = nullptr;
    size_t last = first;
    {
        std::lock_guard guard(slots_lock_);
        const uint64_t size = file_size_.load(std::memory_order_relaxed);
        const size_t end_page = size_t((size + page_size_ - 1) / page_size_);
        if (!options_.zero_copy && count > kCopyModeReadPages)
            count = kCopyModeReadPages;
        while (last < first + count && last < end_page && states_.get(last) == PageState::Unpopulated)
            ++last;
        if (last == first)
            return 0;
        for (Slot& s : slots_)
            if (!s.busy) {
                slot = &s;
                break;
            }
        // Readahead is worth a slot only while slots are plentiful: leave
        // half of them to faults that have a thread waiting.
        size_t busy = 0;
        for (Slot& s : slots_)
            busy += s.busy;
        if (!slot || busy >= kSlots / 2)
            return 0;
        // Readahead takes only the room there is and never waits for more.
        PageBudget* full = nullptr;
        const size_t got = charge(last - first, 1, &full);
        if (got == 0)
            return 0;
        last = first + got;
        claim_run(*slot, first, last);
    }
    // No faulting page: every page of it is read ahead.
    return submit(*slot, SIZE_MAX, io) ? last - first : 0;
}

void FileCache::read_done(io::Operation* op, int32_t result) noexcept
{
    Slot* slot = reinterpret_cast<Slot*>(op);
    slot->cache->finish(*slot, result);
}

void FileCache::finish(Slot& slot, int32_t result) noexcept
{
    const size_t ps = page_size_;
    // On a store's thread for a store's read: its size may be asked.
    const uint64_t size = refresh_size();
    const size_t got = result > 0 ? size_t(result) : 0;
    // Pages are good from the start of the run as long as the read covered
    // them up to the end of the file; the first one that is not (an error,
    // a short read inside the file, or a page past a truncated end) and
    // every one after it fail.
    size_t good = 0;
    for (; good < slot.count; ++good) {
        const uint64_t at = uint64_t(slot.first + good) * ps;
        if (at >= size)
            break;
        const size_t need = size_t(std::min<uint64_t>(ps, size - at));
        if (good * ps + need > got)
            break;
    }
    if (good > 0 && !options_.zero_copy) {
        // Copy mode: whole pages into the memfd at once per page (pwrite
        // fills each page while it is locked, so a region's fault never
        // sees half of one). Bytes past the end of the file read as zeros.
        if (got < good * ps)
            memset(slot.staging + got, 0, good * ps - got);
        size_t done = 0;
        while (done < good * ps) {
            ssize_t n = pwrite(memfd_, slot.staging + done, good * ps - done, off_t(slot.first * ps + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            done += size_t(n);
        }
        good = done / ps;
        if (int ms = os::FaultInjection::take(os::InjectOp::FillPause, uintptr_t(slot.first * ps)))
            usleep(useconds_t(ms) * 1000);
    }
    if (good < slot.count) {
        // Whatever the failed part left in the memfd is not the file's:
        // remove it, so that a later fault reads it again.
        (void)fallocate(memfd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t((slot.first + good) * ps),
            off_t((slot.count - good) * ps));
        if (uint64_t(slot.first + good) * ps < size)
            counters_.read_errors.fetch_add(1, std::memory_order_relaxed);
        for (size_t i = slot.first + good; i < slot.first + slot.count; ++i)
            ahead_[i].store(0, std::memory_order_relaxed);
    }
    counters_.bytes_read.fetch_add(got, std::memory_order_relaxed);

    PendingToken tokens[kMaxWaiters];
    size_t pages[kMaxWaiters];
    CompletionPort* ports[kMaxWaiters];
    size_t waiters;
    const size_t first = slot.first;
    {
        std::lock_guard guard(slots_lock_);
        states_.settle(first, good, PageState::Present);
        states_.settle(first + good, slot.count - good, PageState::Unpopulated);
        uncharge(slot.count - good);
        if (EvictionList* list = eviction())
            for (size_t i = first; i < first + good; ++i)
                list->push_back(i);
        waiters = slot.waiters;
        std::copy(slot.tokens, slot.tokens + waiters, tokens);
        std::copy(slot.pages, slot.pages + waiters, pages);
        std::copy(slot.ports, slot.ports + waiters, ports);
        slot.busy = false;
        slot.waiters = 0;
    }
    // Sequentially consistent with wait_filled()'s count and look: either
    // it sees the pages settled or this sees it waiting.
    settled_epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (settle_waiters_.load(std::memory_order_seq_cst))
        settled_epoch_.notify_all();
    const int32_t failure = result < 0 ? result : -EIO;
    for (size_t i = 0; i < waiters; ++i)
        ports[i]->post(tokens[i], pages[i] < first + good ? 0 : failure);
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    intrusive_ptr_release(this); // may be the last reference
}

void FileCache::wait_filled(size_t first, size_t count) noexcept
{
    if (options_.zero_copy)
        return;
    auto filling = [&] {
        bool any = false;
        states_.for_each_marked_span(first, count, [&](size_t at, size_t n) {
            for (size_t i = at; i < at + n && !any; ++i)
                any = states_.get(i) == PageState::Filling;
        });
        return any;
    };
    settle_waiters_.fetch_add(1, std::memory_order_seq_cst);
    for (;;) {
        const uint32_t epoch = settled_epoch_.load(std::memory_order_seq_cst);
        if (!filling())
            break;
        // Every read completes (or fails) on its own: a store's or the
        // I/O's thread settles it without any lock a writer-back holds.
        settled_epoch_.wait(epoch, std::memory_order_seq_cst);
    }
    settle_waiters_.fetch_sub(1, std::memory_order_seq_cst);
}

void FileCache::mark_dirty(size_t page) noexcept
{
    if (dirty_[page].exchange(1, std::memory_order_acq_rel) == 0)
        counters_.dirty_pages.fetch_add(1, std::memory_order_relaxed);
}

void FileCache::note_mapped(size_t first, size_t count) noexcept
{
    if (EvictionList* list = eviction()) {
        // The faulting page is the one a thread touched: second chance for
        // it (the rest of the run was only mapped beside it).
        list->set_referenced(first);
        if (list->take_zapped(first))
            counters_.referenced_refaults.fetch_add(1, std::memory_order_relaxed);
    }
    for (size_t i = first; i < first + count; ++i)
        if (ahead_[i].load(std::memory_order_relaxed) && ahead_[i].exchange(0, std::memory_order_relaxed))
            counters_.readahead_used.fetch_add(1, std::memory_order_relaxed);
}

const char* FileCache::page_bytes(size_t page) const noexcept
{
    return alias_.load(std::memory_order_acquire) + page * page_size_;
}

void FileCache::drop(size_t first, size_t count) noexcept
{
    std::lock_guard guard(slots_lock_);
    for (size_t i = first; i < first + count; ++i) {
        if (states_.get(i) == PageState::Filling)
            continue;
        const bool cached = states_.get(i) == PageState::Present;
        (void)fallocate(memfd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(i * page_size_), off_t(page_size_));
        states_.settle(i, 1, PageState::Unpopulated);
        if (cached) {
            if (EvictionList* list = eviction())
                list->remove(i);
            uncharge(1);
        }
    }
}

void FileCache::evict_drop(size_t page) noexcept
{
    std::lock_guard guard(slots_lock_);
    // Punching the hole unmaps the page from every shared view and every
    // private view that still maps the memfd's page (the kernel keeps a
    // private region's own written copy).
    (void)fallocate(memfd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(page * page_size_), off_t(page_size_));
    states_.settle(page, 1, PageState::Unpopulated);
    ahead_[page].store(0, std::memory_order_relaxed);
    if (EvictionList* list = eviction())
        list->remove(page);
    uncharge(1);
}

size_t FileCache::charge(size_t want, size_t need, PageBudget** full) noexcept
{
    size_t got = want;
    if (global_budget_) {
        got = global_budget_->charge(want, need);
        if (got == 0) {
            *full = global_budget_.get();
            return 0;
        }
    }
    if (PageBudget* own = own_budget_.get()) {
        const size_t own_got = own->charge(got, need);
        if (own_got < got && global_budget_)
            global_budget_->uncharge(got - own_got);
        if (own_got == 0) {
            *full = own;
            return 0;
        }
        got = own_got;
    }
    cached_pages_.fetch_add(got, std::memory_order_relaxed);
    return got;
}

void FileCache::uncharge(size_t pages) noexcept
{
    if (pages == 0)
        return;
    if (global_budget_)
        global_budget_->uncharge(pages);
    if (PageBudget* own = own_budget_.get())
        own->uncharge(pages);
    size_t now = cached_pages_.load(std::memory_order_relaxed);
    while (!cached_pages_.compare_exchange_weak(now, now > pages ? now - pages : 0, std::memory_order_relaxed)) {
    }
}

Result<void> FileCache::enable_eviction(std::shared_ptr<PageBudget> global, size_t own_pages, unsigned high_percent,
    unsigned low_percent, size_t batch_pages, void (*wake)(void*), void* context)
{
    std::lock_guard guard(slots_lock_);
    if (own_pages) {
        if (own_budget_)
            own_budget_->tighten(own_pages);
        else if (cached_pages_.load() == 0) {
            own_budget_.reset(new (std::nothrow) PageBudget(own_pages, high_percent, low_percent, batch_pages, wake, context));
            if (!own_budget_)
                return fail(ENOMEM, "out of memory for a cache budget");
        } else {
            // Pages cached before the budget existed were never charged to
            // it; charging them now keeps the count exact.
            own_budget_.reset(new (std::nothrow) PageBudget(own_pages, high_percent, low_percent, batch_pages, wake, context));
            if (!own_budget_)
                return fail(ENOMEM, "out of memory for a cache budget");
            own_budget_->set_overrun(true);
            (void)own_budget_->charge(cached_pages_.load(), 0);
            own_budget_->set_overrun(false);
        }
        own_budget_ptr_.store(own_budget_.get(), std::memory_order_release);
    }
    if (global && !global_budget_) {
        global_budget_ = std::move(global);
        if (size_t n = cached_pages_.load()) {
            global_budget_->set_overrun(true);
            (void)global_budget_->charge(n, 0);
            global_budget_->set_overrun(false);
        }
    }
    if (!eviction_owner_) {
        // Every page a file of 16 TiB can have but the last (the list's
        // entries are 32 bits wide).
        eviction_owner_ = TRY(EvictionList::create(kMaxPages - 1));
        states_.for_each_marked_span(0, kMaxPages - 1, [&](size_t at, size_t n) {
            for (size_t i = at; i < at + n; ++i)
                if (states_.get(i) == PageState::Present)
                    eviction_owner_->push_back(i);
        });
        eviction_.store(eviction_owner_.get(), std::memory_order_release);
    }
    return {};
}

} // namespace faultline::memory
