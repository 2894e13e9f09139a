// faultline/runtime.h — the C++ entry point.
//
//   auto rt = faultline::Runtime::create({}).value();
//   void* p = rt->map_anonymous({.size = 1 << 30, .name = "cache"}).value();
//   static_cast<char*>(p)[4096] = 1;   // served by the runtime's fault handler
//   rt->unmap(p, 1 << 30);
//
// A Runtime owns one virtual-address arena registered with userfaultfd, a
// tree of regions carved from it, and the handler threads that serve their
// page faults. Every method is thread-safe. Destroying the Runtime unmaps
// every region (except sealed immutable ones, which the kernel keeps mapped
// until the process exits; they become ordinary anonymous memory).
#pragma once

#include <faultline/export.h>
#include <faultline/purgeable.h>
#include <faultline/result.h>
#include <faultline/store.h>
#include <faultline/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace faultline {

struct Config {
    // Bytes of virtual address space reserved for the arena (PROT_NONE,
    // MAP_NORESERVE: it costs page-table space only once touched).
    size_t arena_size = size_t(64) << 30;
    // Bytes that committed regions may reserve in total; 0 = MemTotal + SwapTotal.
    size_t commit_limit = 0;
    // Threads reading fault events; 0 = two where the machine has two or
    // more CPUs, else one. With two, the handler already on the faulting
    // thread's CPU answers without a cross-CPU wake-up (docs/performance.md).
    unsigned handler_threads = 0;
    // Pages installed per isolated fault event (1 = no fault-around). 32 is
    // the knee measured by bench/ (docs/performance.md).
    unsigned fault_around_pages = 32;
    // Fault-around adapts like file readahead: a stream of sequential
    // faults grows its window up to this many pages, isolated faults get
    // fault_around_pages. 0 = automatic: 512, or 1 when fault_around_pages
    // is 1. Equal to fault_around_pages: a fixed window. At most 512.
    unsigned fault_around_max_pages = 0;
    // Microseconds a handler thread keeps polling the userfaultfd without
    // sleeping after its last event (0 = sleep in poll(2) at once). Spinning
    // saves the wake-up of a sleeping handler on the next fault, at the cost
    // of a busy CPU while faults keep coming. Chosen from bench/.
    unsigned handler_spin_us = 0;
    // When a faulting thread is woken relative to its fault-around window.
    // Adaptive: a thread streaming through memory waits for its window (it
    // touches it next); one with an isolated fault is woken as soon as its
    // page is in, and the window is filled while it runs on. Measured in
    // docs/performance.md.
    WakeOrder wake_order = WakeOrder::Adaptive;
    // The memory budget (docs/design.md, "The budget"): bytes of file and
    // store pages the runtime keeps resident, every region together (0 = no
    // limit). Above `budget_high_percent` of it an evictor thread (never a
    // fault handler) drops clean pages and writes dirty ones back first,
    // down to `budget_low_percent`; a fault that would take the pages past
    // the budget itself waits for room. The budget must hold at least one
    // eviction batch (EINVAL otherwise).
    uint64_t memory_budget = 0;
    unsigned budget_high_percent = 95;
    unsigned budget_low_percent = 85;
    // Pages the evictor takes per step (the most the resident pages may
    // stand above the budget).
    unsigned eviction_batch_pages = 64;
    // Which pages go first (docs/design.md measures both).
    EvictionPolicy eviction_policy = EvictionPolicy::Clock;
    // The swap pager (docs/heap.md, "Swap"): with a memory budget, private
    // anonymous regions are under it too, and their cold pages are written
    // to a swap file the runtime creates — in `swap_path` if it names a
    // directory, as `swap_path` if it names a file that does not exist yet
    // (empty: $TMPDIR, else /tmp). The file is unlinked at once and never
    // outlives the process. At most `swap_size` bytes of it are used (0 =
    // as much as the arena). Needs write-protect faults on anonymous memory
    // (5.7); without them anonymous memory stays outside the budget.
    // `swap_path` = "redis://[user[:password]@]host[:port][?connect_timeout_ms=
    // N&command_timeout_ms=N]" keeps the pages in Redis instead (far memory,
    // docs/far-memory.md; the password may come from
    // $FAULTLINE_REDIS_PASSWORD).
    // `swap = false` keeps anonymous memory outside the budget.
    bool swap = true;
    std::string swap_path;
    uint64_t swap_size = 0;
    // Allow W+X regions and W->X / X->W transitions (refused by default).
    bool allow_write_execute = false;
    using UffdMode = faultline::UffdMode;
    UffdMode uffd_mode = UffdMode::Auto;
    // Extra feature names to hide, added to those in $FAULTLINE_DISABLE.
    std::string disable;
    // Purgeable memory: purge order, budget, pressure trigger
    // (docs/purgeable.md).
    PurgeConfig purge;
    // Publish the statistics endpoint "@faultline/<pid>/<n>" that
    // `faultline stat PID` reads (docs/stat.md): one thread sleeping in
    // poll(2) and two descriptors. On by default, so that any running
    // program can be inspected without having been prepared for it; only
    // the same user and root are answered. FAULTLINE_DISABLE=stat_endpoint
    // (or "stat_endpoint" in `disable`) turns it off too.
    bool stat_endpoint = true;
};

class RuntimeCore;

// Registers a function every thread the runtime starts (fault handlers, I/O
// and store workers, the evictor, the purge worker) calls first, before it
// allocates anything. For allocators that embed the runtime and must keep
// its threads' allocations out of the memory it serves (libfaultline_malloc.so
// does). One hook per process; nullptr removes it. Threads already running
// are not called back.
FAULTLINE_API void set_runtime_thread_hook(void (*hook)()) noexcept;

class FAULTLINE_API Runtime {
public:
    // Opens userfaultfd, negotiates features, reserves and registers the
    // arena and starts the handler threads. Fails with EPERM/ENOSYS and a
    // message that names the fix when userfaultfd is not available.
    static Result<std::unique_ptr<Runtime>> create(Config config = {});
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    // Maps an anonymous region whose pages are zero-filled on first touch.
    Result<void*> map_anonymous(const MapOptions& options);
    // Maps `options.length` bytes of the file `fd` refers to, from
    // `options.offset`, as mmap(2) would (docs/api.md, "map_file"). The
    // runtime keeps its own descriptor; the caller may close `fd` at once.
    Result<void*> map_file(int fd, const FileMapOptions& options);
    // The same, opening `path` (read-only, or read-write for a writable
    // shared mapping).
    Result<void*> map_file(const char* path, const FileMapOptions& options);
    // Maps `options.length` bytes of a page store from `options.offset`
    // (faultline/store.h): a region that behaves like a shared file region
    // of the store. The runtime keeps `store` alive while any region of it
    // is mapped; regions of one store object share one cache.
    Result<void*> map_store(std::shared_ptr<Store> store, const StoreMapOptions& options);
    // Writes the dirty pages of the shared file regions over the range back
    // to their files, as msync(2) (docs/api.md, "sync").
    Result<void> sync(void* address, size_t size, SyncFlags flags = SyncFlags::Sync);
    // Unmaps [address, address+size); splits regions it cuts. The whole range
    // must be mapped (ENOENT otherwise: nothing is changed). docs/api.md lists
    // every call's errno values.
    Result<void> unmap(void* address, size_t size);
    // Changes access over [address, address+size); splits regions it cuts.
    Result<void> protect(void* address, size_t size, Access access);
    // Renames the region(s) over [address, address+size).
    Result<void> set_name(void* address, size_t size, std::string_view name);
    // Makes the range immutable (and mseal(2)s it when the kernel can).
    Result<void> make_immutable(void* address, size_t size);
    // Drops the pages of the range (MADV_DONTNEED): the next touch faults in
    // zeros again. EPERM on immutable regions.
    Result<void> discard(void* address, size_t size);

    // Copy-on-write (docs/cow.md). A new region with the contents of the
    // region that starts at `address` at the moment of the call; both stay
    // writable and diverge, sharing their pages until either writes. The
    // region must be mapped with RegionFlags::Clonable, or be a private file
    // region (its written pages are copied) or a purgeable region (a copy of
    // its resident pages). `name` empty: the source's. ENOENT: no region
    // there; EINVAL: not the start of a region, or none of these; EPERM: immutable; ENOMEM: the clone's commit (its
    // size, unless NoReserve) does not fit.
    Result<void*> clone(void* address, std::string_view name = {});
    // A read-only clone of the region at `address`, remembered as its
    // snapshot: it can be read (by any thread) while the region changes.
    // Errors as clone().
    Result<void*> snapshot(void* address, std::string_view name = {});
    // Restores the region at `address` to `snapshot`'s contents: in time
    // proportional to the pages written since, when the region has only
    // written pages since the snapshot. ENOENT: no region at either address;
    // EINVAL: not the start of a region, or not a snapshot of this region
    // (another region's; or this one was split or unmapped since); EPERM:
    // immutable. The snapshot stays valid for further rollbacks.
    Result<void> rollback(void* address, void* snapshot);

    // Purgeable memory (docs/purgeable.md, docs/api.md "Purgeable memory").
    // Maps a private anonymous region whose pages can be made volatile. Its
    // size is committed like map_anonymous's (unless NoReserve).
    Result<void*> allocate_purgeable(size_t size, const PurgeableOptions& options = {});
    // Marks the pages of [address, address+size) volatile: the runtime may
    // purge them from now on, and their commit charge is released. The whole
    // range must be mapped (ENOENT), purgeable (EINVAL) and not immutable
    // (EPERM). Making pages volatile again renews their place in the order.
    Result<void> set_volatile(void* address, size_t size, VolatileOptions options = {});
    // Makes them non-volatile again and reports which were purged meanwhile
    // (their contents are now zeros). ENOMEM when the commit limit cannot
    // take the pages back: the range then stays volatile and nothing is lost.
    Result<NonVolatileResult> set_nonvolatile(void* address, size_t size);
    // Purges at least `bytes` of resident volatile memory (kPurgeAll: every
    // volatile page), in purge order, on the purge worker thread. EINVAL for
    // 0; EDEADLK from a purge callback.
    Result<PurgeResult> purge(size_t bytes);
    // Replaces the purge callbacks (run on the purge worker thread).
    Result<void> set_purge_callbacks(PurgeCallbacks callbacks);
    // Totals over every purgeable region.
    PurgeStats purge_stats() const;

    // Statistics for the region containing `address` (ENOENT if none).
    Result<RegionStats> region_stats(const void* address) const;
    // In a fork child, calls that return a Result fail with ECHILD (the
    // child's copy of a runtime is inert, docs/api.md); regions(), stats()
    // and to_json() describe the copy.
    std::vector<RegionStats> regions() const;
    RuntimeStats stats() const;
    // Region table and counters as JSON (see docs/api.md for the schema).
    std::string to_json() const;

    // The arena's bounds.
    void* arena_base() const;
    size_t arena_size() const;
    // Names of the optional kernel features in use (after FAULTLINE_DISABLE).
    std::vector<std::string> features() const;
    bool has_feature(std::string_view name) const;
    // True when the userfaultfd was opened with UFFD_USER_MODE_ONLY.
    bool user_mode_only() const;
    // The statistics endpoint's address, "@faultline/<pid>/<n>"
    // (docs/stat.md); empty when none is published (turned off, it could
    // not be opened, or in a fork child).
    std::string stat_address() const;
    const Config& config() const;

private:
    explicit Runtime(std::unique_ptr<RuntimeCore>);
    std::unique_ptr<RuntimeCore> core_;
};

} // namespace faultline
