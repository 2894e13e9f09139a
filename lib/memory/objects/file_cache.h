// memory/objects/file_cache.h — one file's pages, as the runtime caches them.
//
// One FileCache per (device, inode) in a runtime. Its pages live in a memfd —
// one page cache that every region of the file maps (MAP_SHARED for shared
// regions, MAP_PRIVATE for private ones), so shared regions see each other's
// writes at once and private ones share the clean pages. The cache reads the
// file with the fault service's I/O (io_uring) and never blocks a handler:
//
//   zero-copy mode (minor faults available, the default): the read lands
//     straight in the memfd's page, through an unregistered alias mapping of
//     it. The page exists in the memfd while the read is in flight, so the
//     regions are registered for MISSING and MINOR faults and map a page
//     with UFFDIO_CONTINUE only once its read completed: a fault on a page
//     being read waits for that read.
//   copy mode (no minor faults): the read lands in a staging buffer, and the
//     completion writes it into the memfd with pwrite(2), which makes a page
//     appear whole to the regions' page faults (the page is locked while it
//     is filled). The regions are registered for MISSING faults only; a
//     thread whose page arrived is woken and the kernel maps it.
//
// Each read is a slot (fixed pool) that lists the faults waiting for it; its
// completion settles the pages' states and posts every waiter's token to the
// fault service, which resumes them. A fault on a page whose read is in
// flight joins that read: concurrent faults on one page cause one read.
//
// A cache may serve a user's page store (faultline/store.h) instead of a
// file: reads then go to the store's own threads (io/store_queue.h) instead
// of io_uring, and write-back calls the store. Everything else is the same.
//
// Page states (PageStates): Unpopulated (not known to be in the memfd),
// Filling (a read is in flight), Present (in the memfd, whole). Dirty bits
// (written since last synced) and readahead bits (read ahead, not used yet)
// sit beside them.
#pragma once

#include "io/operation.h"
#include "io/store_queue.h"
#include "memory/fault_context.h"
#include "memory/io_port.h"
#include "memory/objects/eviction_list.h"
#include "memory/page_budget.h"
#include "memory/page_states.h"

#include <faultline/result.h>

#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <sys/types.h>
#include <vector>

namespace faultline::memory {

class FileCache : public boost::intrusive_ref_counter<FileCache, boost::thread_safe_counter> {
public:
    // The most pages a file may have in a runtime (16 TiB): the page-state
    // tables are reserved for it (NORESERVE: they cost what is used).
    static constexpr size_t kMaxPages = size_t(1) << 32;
    static constexpr size_t kSlots = 128;
    static constexpr size_t kMaxWaiters = 16;
    // Reads in copy mode are at most this many pages (the staging pool is
    // kSlots of them).
    static constexpr size_t kCopyModeReadPages = 16;

    // How writes to shared regions are found (SharedInodeVMObject).
    enum class WriteTracking : uint8_t {
        None,   // not at all: every cached page counts as dirty
        Faults, // write-protect faults: the first write to a page marks it dirty
        Async,  // the kernel marks written pages itself (WP_ASYNC); sync collects them with PAGEMAP_SCAN
    };
    struct Options {
        bool zero_copy = true;   // minor faults available
        bool direct_io = false;  // O_DIRECT reads (aligned: the alias and offsets are page-aligned)
        WriteTracking tracking = WriteTracking::Faults;
        // UFFDIO_CONTINUE_MODE_WP (6.4): a cached page is mapped
        // write-protected in one call (InodeVMObject::map_cached).
        bool continue_wp = true;
    };

    // Takes ownership of `fd` (the runtime's own duplicate of the file).
    static Result<boost::intrusive_ptr<FileCache>> create(int fd, bool writable, size_t page_size, Options options);
    // A cache of a page store, read through `queue`.
    static Result<boost::intrusive_ptr<FileCache>> create_for_store(std::shared_ptr<io::StoreQueue> queue,
        size_t page_size, Options options);
    ~FileCache();
    FileCache(const FileCache&) = delete;
    FileCache& operator=(const FileCache&) = delete;

    dev_t device() const noexcept { return device_; }
    ino_t inode() const noexcept { return inode_; }
    int fd() const noexcept { return fd_; }
    // The store this cache serves (null for a file).
    Store* store() const noexcept { return store_ ? &store_->store() : nullptr; }
    void abandon_store() noexcept
    {
        if (store_)
            store_->abandon();
    }
    int memfd() const noexcept { return memfd_; }
    bool writable() const noexcept { return writable_; }
    const Options& options() const noexcept { return options_; }
    size_t page_size() const noexcept { return page_size_; }

    // API threads: makes the memfd (and the alias over it) cover
    // [0, bytes). Never shrinks.
    Result<void> ensure_size(size_t bytes);
    // Swaps in a more capable descriptor of the same file (a later mapping
    // opened it read-write); takes ownership.
    void upgrade_fd(int fd) noexcept;

    // The file's size as of now (fstat; the last known size if that fails),
    // or the store's.
    uint64_t file_size() noexcept;
    // The same, asking the store for its size (never on a handler thread).
    uint64_t refresh_size() noexcept;

    // Write-back to the file: pwrite(2) of `bytes` at `offset`, -1 and errno
    // on failure. A descriptor opened for direct_io is O_DIRECT, which
    // refuses a length or offset that is not block-aligned — and the file's
    // partial last page never is: without this, that page (and every page
    // written in the same request) could never be written back. Such a write
    // goes through a buffered descriptor of the file opened for it
    // (direct_write_refused() tells which writes these are).
    ssize_t write_file(const void* data, size_t bytes, uint64_t offset) noexcept;
    // True when fd() is O_DIRECT and [offset, offset + bytes) is not
    // page-aligned: the write must not be submitted on fd() (io_uring).
    bool direct_write_refused(uint64_t offset, size_t bytes) const noexcept;

    PageStates& states() noexcept { return states_; }
    const PageStates& states() const noexcept { return states_; }

    // Fault path. What fetch() found or did for one cache page.
    enum class Fetch : uint8_t {
        Present,  // the page is in the memfd, whole: map it
        Pending,  // a read is in flight; the fault's token will be posted
        Retry,    // no read slot or no room to queue I/O now
        PastEnd,  // the page lies wholly past the end of the file
    };
    // Makes page `page` present: joins its read if one is in flight, or
    // starts one for the run of absent pages around it within `window`
    // (readahead), waiting with `token`. `io` queues the read.
    Fetch fetch(size_t page, size_t window_first, size_t window_count, PendingToken token, CompletionPort* port,
        IoPort* io) noexcept;

    // Readahead with nobody waiting: starts a read of the absent pages from
    // `first` on (at most `count`, within the file), unless one is in
    // flight there already. Returns the pages it will read.
    size_t fetch_ahead(size_t first, size_t count, IoPort* io) noexcept;

    // Dirty tracking (shared regions).
    void mark_dirty(size_t page) noexcept;
    bool dirty(size_t page) const noexcept { return dirty_[page].load(std::memory_order_acquire) != 0; }
    // True if the page was dirty.
    bool clear_dirty(size_t page) noexcept
    {
        if (dirty_[page].exchange(0, std::memory_order_acq_rel) == 0)
            return false;
        counters_.dirty_pages.fetch_sub(1, std::memory_order_relaxed);
        return true;
    }
    // Write-back (sync, eviction) of a dirty page, in two steps around the
    // write: the page stays dirty — for dirty() and the statistics — until
    // end_writeback() says it was written, so a page whose write fails is
    // never seen clean, not even while it is being written. A write to the
    // page in between marks it dirty again, which end_writeback() leaves.
    // (The byte is 1 for dirty, 2 for dirty and being written back.)
    void begin_writeback(size_t page) noexcept
    {
        uint8_t dirty = 1;
        (void)dirty_[page].compare_exchange_strong(dirty, 2, std::memory_order_acq_rel);
    }
    void end_writeback(size_t page, bool written) noexcept
    {
        uint8_t writing = 2;
        if (written) {
            if (dirty_[page].compare_exchange_strong(writing, 0, std::memory_order_acq_rel))
                counters_.dirty_pages.fetch_sub(1, std::memory_order_relaxed);
        } else {
            (void)dirty_[page].compare_exchange_strong(writing, 1, std::memory_order_acq_rel);
        }
    }
    // Readahead accounting: a page read ahead is "used" the first time a
    // region maps it.
    void note_mapped(size_t first, size_t count) noexcept;

    // The memfd's bytes of `page`, through the alias (API threads, sync).
    const char* page_bytes(size_t page) const noexcept;
    // Drops pages from the memfd (every region mapping them sees the file
    // again on the next touch).
    void drop(size_t first, size_t count) noexcept;

    // Eviction under a memory budget (runtime/evictor.h). API threads:
    // makes the cache's pages evictable, charging them to `global` (the
    // runtime's budget, may be null) and to a budget of the cache's own of
    // `own_pages` (0 = none; a later, smaller one tightens it). Pages
    // already cached join the eviction list.
    Result<void> enable_eviction(std::shared_ptr<PageBudget> global, size_t own_pages, unsigned high_percent, unsigned low_percent,
        size_t batch_pages, void (*wake)(void*), void* context);
    EvictionList* eviction() const noexcept { return eviction_.load(std::memory_order_acquire); }
    // (Read by the evictor and statistics without the cache's lock: set once,
    // published with release.)
    PageBudget* own_budget() const noexcept { return own_budget_ptr_.load(std::memory_order_acquire); }
    // Pages in the memfd or being read into it.
    size_t cached_pages() const noexcept { return cached_pages_.load(std::memory_order_relaxed); }
    // Evictor: removes a page it holds Dropping (EvictionList::commit_evict)
    // from the memfd — every view of it with it; private regions keep their
    // own written copies — and from the budgets.
    void evict_drop(size_t page) noexcept;

    struct Counters {
        std::atomic<uint64_t> bytes_read { 0 };
        std::atomic<uint64_t> bytes_written { 0 };
        std::atomic<uint64_t> reads { 0 };
        std::atomic<uint64_t> read_errors { 0 };
        std::atomic<uint64_t> readahead_pages { 0 };
        std::atomic<uint64_t> readahead_used { 0 };
        std::atomic<uint64_t> dirty_pages { 0 };
        std::atomic<uint64_t> evictions_clean { 0 };
        std::atomic<uint64_t> evictions_dirty { 0 };
        std::atomic<uint64_t> eviction_write_errors { 0 };
        std::atomic<uint64_t> referenced_refaults { 0 };
    };
    Counters& counters() noexcept { return counters_; }
    const Counters& counters() const noexcept { return counters_; }

    // Held by whoever writes pages back (sync, unmap, the evictor) from
    // reading dirty bits to the end of its writes and drops. Never taken on
    // a handler thread.
    std::mutex& writeback_lock() noexcept { return writeback_lock_; }

    // Waits until no page of [first, first + count) is being read (Filling).
    // API threads (write-back), never a handler: in copy mode a read's
    // pages are in the memfd — mapped by the kernel, written by threads
    // without a fault — a moment before they count as cached, and a sync
    // that skipped them would report success without the bytes a thread
    // wrote before it asked. Returns at once in zero-copy mode, where no
    // thread sees a page before it is cached.
    void wait_filled(size_t first, size_t count) noexcept;

    // Reads still in flight (runtime shutdown waits for none).
    size_t reads_in_flight() const noexcept { return in_flight_.load(std::memory_order_acquire); }

private:
    struct Slot {
        io::Operation op; // first: the completion finds its slot from it
        FileCache* cache = nullptr;
        size_t first = 0;
        size_t count = 0;
        char* staging = nullptr;
        size_t waiters = 0;
        PendingToken tokens[kMaxWaiters];
        size_t pages[kMaxWaiters];
        // Each waiter's fault service (a runtime may have two: one per
        // userfaultfd).
        CompletionPort* ports[kMaxWaiters] {};
        bool busy = false;
    };
    FileCache(int fd, bool writable, size_t page_size, Options options, PageStates states, std::atomic<uint8_t>* dirty,
        std::atomic<uint8_t>* ahead);
    // The part of creation a file and a store share: tables, memfd, staging.
    static Result<boost::intrusive_ptr<FileCache>> create_common(int fd, bool writable, size_t page_size, Options options);

    // Claims pages [first, last) for `slot` (caller holds slots_lock_).
    void claim_run(Slot& slot, size_t first, size_t last) noexcept;
    // Queues the slot's read on `io`; on failure undoes the claim. The
    // pages other than `fault_page` count as read ahead.
    bool submit(Slot& slot, size_t fault_page, IoPort* io) noexcept;
    static void read_done(io::Operation* op, int32_t result) noexcept;
    void finish(Slot& slot, int32_t result) noexcept;
    Slot* slot_covering(size_t page) noexcept;
    // Charges up to `want` pages (at least `need`) to the budgets; 0 when
    // they have no room, with `*full` the budget that refused.
    size_t charge(size_t want, size_t need, PageBudget** full) noexcept;
    void uncharge(size_t pages) noexcept;

    int fd_;
    bool writable_;
    size_t page_size_;
    Options options_;
    dev_t device_ = 0;
    ino_t inode_ = 0;
    int memfd_ = -1;
    std::shared_ptr<io::StoreQueue> store_;
    // The alias: an unregistered MAP_SHARED view of the memfd. Reads land
    // in it, sync reads it. It only grows, by a new mapping; earlier ones
    // stay until the cache dies, because reads may still target them.
    std::atomic<char*> alias_ { nullptr };
    std::atomic<size_t> alias_bytes_ { 0 };
    std::vector<std::pair<char*, size_t>> aliases_;
    size_t memfd_bytes_ = 0;
    std::atomic<uint64_t> file_size_ { 0 };

    PageStates states_;
    std::atomic<uint8_t>* dirty_;
    std::atomic<uint8_t>* ahead_;
    std::mutex slots_lock_;
    std::mutex writeback_lock_;
    Slot slots_[kSlots];
    char* staging_ = nullptr; // copy mode: kSlots * kCopyModeReadPages pages
    std::atomic<size_t> in_flight_ { 0 };
    // wait_filled(): a read's completion bumps the epoch and, only when
    // someone waits, wakes them (a futex wake per completion otherwise).
    std::atomic<uint32_t> settled_epoch_ { 0 };
    std::atomic<uint32_t> settle_waiters_ { 0 };
    Counters counters_;
    std::atomic<size_t> cached_pages_ { 0 };
    // Shared: a cache can outlive the evictor that owns the runtime's budget
    // (regions die with the region tree, after it), and uncharges it then.
    std::shared_ptr<PageBudget> global_budget_;
    std::unique_ptr<PageBudget> own_budget_;
    std::atomic<PageBudget*> own_budget_ptr_ { nullptr };
    std::unique_ptr<EvictionList> eviction_owner_;
    std::atomic<EvictionList*> eviction_ { nullptr };
};

} // namespace faultline::memory
