// faultline/types.h — value types shared by the C++ API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace faultline {

// How the runtime opens its userfaultfd (Config::uffd_mode).
enum class UffdMode : uint8_t {
    // Try a full userfaultfd (kernel faults too), then user-mode-only.
    Auto,
    // Require a userfaultfd that also serves faults taken in the kernel.
    Full,
    // Only ever open with UFFD_USER_MODE_ONLY (read(2) into an unpopulated
    // region page then fails with EFAULT; see docs/kernels.md).
    UserModeOnly,
};

// When a faulting thread is woken relative to its fault-around window
// (Config::wake_order; docs/performance.md has the measurements).
enum class WakeOrder : uint8_t {
    // A stream (sequential faults) waits for its window, which it is about
    // to touch; an isolated fault is woken as soon as its own page is in and
    // the window is filled while it runs on.
    Adaptive,
    // Every thread waits for its whole window (the behaviour before
    // adaptive fault-around).
    AfterWindow,
    // Every thread is woken as soon as its own page is in.
    BeforeWindow,
};

// Which cached file and store pages the evictor drops first under a memory
// budget (Config::eviction_policy).
enum class EvictionPolicy : uint8_t {
    // Second chance: a page touched since the evictor last passed it stays
    // (the evictor learns of touches by unmapping pages it passes from the
    // regions' views while keeping them cached, so the next touch is a cheap
    // minor fault that marks the page referenced).
    Clock,
    // The page read longest ago goes first, touched or not (umap's policy).
    Fifo,
};

// Access rights of a region, a subset of R|W|X. The numeric values match
// PROT_READ, PROT_WRITE and PROT_EXEC so they pass straight to mprotect(2).
enum class Access : uint8_t {
    None = 0,
    Read = 1,
    Write = 2,
    Execute = 4,
    ReadWrite = 3,
    ReadExecute = 5,
    ReadWriteExecute = 7,
};
constexpr Access operator|(Access a, Access b) { return Access(uint8_t(a) | uint8_t(b)); }
constexpr Access operator&(Access a, Access b) { return Access(uint8_t(a) & uint8_t(b)); }
constexpr bool has(Access set, Access bit) { return (uint8_t(set) & uint8_t(bit)) == uint8_t(bit); }
// True when every right in `a` is also in `b`.
constexpr bool is_subset(Access a, Access b) { return (uint8_t(a) & ~uint8_t(b)) == 0; }

enum class RegionFlags : uint32_t {
    None = 0,
    // Pages live in a memfd mapped MAP_SHARED: a fork child's copy of the
    // region shares them (writes on either side are seen by both) instead of
    // copying them. Without it, anonymous regions are private.
    Shared = 1u << 0,
    // A stack: one PROT_NONE guard page is kept directly below the region so
    // that overflowing it raises SIGSEGV instead of running into a neighbour.
    Stack = 1u << 1,
    // Layout and access can never change again (protect, unmap, rename and
    // advise fail with EPERM); sealed with mseal(2) where the kernel has it.
    Immutable = 1u << 2,
    // Purgeable memory: pages can be made volatile and then purged by the
    // runtime (Runtime::allocate_purgeable, docs/purgeable.md). Private
    // anonymous memory only: with Shared or Stack it is refused (EINVAL).
    Purgeable = 1u << 3,
    // Commit nothing against the runtime's commit limit. A fault may then
    // fail for lack of memory, which is delivered as SIGBUS.
    NoReserve = 1u << 4,
    // Can be cloned in O(1) (Runtime::clone): the pages live in a memfd, so
    // a clone shares them until either side writes (docs/cow.md). Private
    // anonymous memory only: with Shared, Stack or Purgeable it is refused
    // (EINVAL). Not swapped under a memory budget.
    Clonable = 1u << 5,
};
constexpr RegionFlags operator|(RegionFlags a, RegionFlags b) { return RegionFlags(uint32_t(a) | uint32_t(b)); }
constexpr RegionFlags operator&(RegionFlags a, RegionFlags b) { return RegionFlags(uint32_t(a) & uint32_t(b)); }
constexpr bool has(RegionFlags set, RegionFlags bit) { return (uint32_t(set) & uint32_t(bit)) != 0; }

// How a region is placed and what it may do.
struct MapOptions {
    size_t size = 0;                    // bytes, a multiple of the page size, > 0
    size_t alignment = 0;               // 0 = page size; otherwise a power of two >= page size
    void* address = nullptr;            // non-null: place exactly here (must lie in the arena)
    Access access = Access::ReadWrite;  // rights now
    Access max_access = Access::None;   // rights ever allowed; None = same as `access`
    RegionFlags flags = RegionFlags::None;
    std::string name;                   // shown in /proc/self/maps as [anon:NAME]; <= 80 bytes
};

// How a file region relates to the file (mmap(2)'s MAP_SHARED / MAP_PRIVATE).
enum class Sharing : uint8_t {
    // Writes go to the file (on sync, unmap and destruction), and every
    // shared region of the file, at any offset, sees every other's at once.
    Shared,
    // A private copy: written pages never reach the file; clean pages are
    // the file's and may be dropped and read again.
    Private,
};

// How a file region is mapped (Runtime::map_file).
struct FileMapOptions {
    size_t length = 0;                  // bytes from `offset`, > 0; rounded up to whole pages; may reach past EOF
    int64_t offset = 0;                 // file offset, a multiple of the page size, >= 0
    void* address = nullptr;            // non-null: place exactly here (must lie in the arena)
    Access access = Access::Read;       // rights now; at most what the descriptor allows
    Sharing sharing = Sharing::Shared;
    std::string name;                   // as MapOptions::name
    // Readahead in pages: an isolated fault reads `readahead_min_pages`
    // (aligned), a sequential stream grows its reads up to
    // `readahead_max_pages`. 0 = defaults (1 and 256).
    unsigned readahead_min_pages = 0;
    unsigned readahead_max_pages = 0;
    // Read with O_DIRECT (the runtime's own cache is then the only one;
    // the file system must support it: EINVAL otherwise).
    bool direct_io = false;
    // Bytes of this region's file pages that may stay resident (0 = only
    // the runtime's Config::memory_budget applies).
    uint64_t budget = 0;
};

// sync(): msync(2)'s flags.
enum class SyncFlags : uint32_t {
    None = 0,
    Sync = 1,       // write the dirty pages and wait until they are on stable storage (fdatasync)
    Async = 2,      // write them (the kernel flushes its own cache later)
    Invalidate = 4, // then drop the clean cached pages: the next touch reads the file again
};
constexpr SyncFlags operator|(SyncFlags a, SyncFlags b) { return SyncFlags(uint32_t(a) | uint32_t(b)); }
constexpr bool has(SyncFlags set, SyncFlags bit) { return (uint32_t(set) & uint32_t(bit)) != 0; }

// Counters kept per region. Resident/dirty/cow figures are read from the
// kernel's page tables when asked (never tracked on the fault path). Each
// fault counter is incremented by a code path that exists today; the region
// kinds on the roadmap add theirs (copy-on-write, swap)
// as they land.
struct RegionStats {
    uintptr_t base = 0;
    size_t size = 0;
    std::string name;
    Access access = Access::None;
    Access max_access = Access::None;
    RegionFlags flags = RegionFlags::None;
    const char* object_kind = "";
    size_t amount_resident = 0;  // bytes in private pages (not counting the shared zero page)
    size_t amount_dirty = 0;     // bytes that differ from their backing (for anonymous memory: all private pages)
    size_t amount_zero_mapped = 0; // bytes mapped to the shared zero page
    size_t cow_pages = 0;        // pages shared copy-on-write with another mm (fork child)
    // Copy-on-write views (clones, snapshots and their sources, docs/cow.md):
    // pages mapped from the frozen object or its layers, shared with every
    // view of them; pages this view has written since (its own copies); and
    // the number of frozen objects it reads through (0: not a view; 1: the
    // base; one more per layer of its chain, at most 8).
    size_t cow_shared_pages = 0;
    size_t cow_private_pages = 0;
    unsigned chain_depth = 0;
    uint64_t zero_faults = 0;    // faults resolved by zero-fill (read or write)
    uint64_t write_protect_faults = 0; // write-protect faults resolved (dirty tracking)
    uint64_t inode_faults = 0;   // faults resolved from a file (file regions)
    uint64_t pages_installed = 0; // pages installed by fault service, fault-around included
    // File regions: the file's cache, shared by every region of the file.
    uint64_t file_bytes_read = 0;
    uint64_t file_bytes_written = 0;
    uint64_t file_read_errors = 0;
    uint64_t readahead_pages = 0; // pages read beyond the faulting page
    uint64_t readahead_used = 0;  // of those, pages a region mapped since (the rest: wasted or not yet used)
    size_t dirty_pages = 0;       // pages of this region written and not yet synced
    // Under a memory budget (the file's or store's cache, like the counters
    // above): pages resident now, pages evicted clean and after a write-back,
    // and touches of pages the evictor had unmapped to learn they are used.
    size_t cached_pages = 0;
    uint64_t evictions_clean = 0;
    uint64_t evictions_dirty = 0;
    uint64_t referenced_refaults = 0;
    uint64_t budget = 0; // this region's own budget in bytes (0 = none)
    // Purgeable regions (docs/purgeable.md). Resident figures are read from
    // the page tables; purge figures are the region's object's, shared by
    // the pieces of a split region.
    size_t volatile_bytes = 0;        // bytes of this region marked volatile
    size_t volatile_resident = 0;     // resident bytes among them (not counting the zero page)
    size_t nonvolatile_resident = 0;  // resident non-volatile bytes
    size_t purged_pages = 0;          // pages of this region purged and not yet reported by set_nonvolatile
    uint64_t purges = 0;              // spans of the object purged
    uint64_t purged_bytes = 0;        // resident bytes of the object dropped by purges
    uint64_t purged_refaults = 0;     // faults on purged volatile pages of the object
    bool has_been_writable = false;
    bool has_been_executable = false;
};

struct ThreadFaultCount {
    int tid = 0;
    uint64_t faults = 0;
};

struct RuntimeStats {
    uint64_t fault_events = 0;      // page-fault messages read from userfaultfd
    uint64_t faults_deduplicated = 0; // messages for a page already being served (same or earlier batch)
    uint64_t write_protect_faults = 0; // write-protect fault messages
    uint64_t minor_faults = 0;      // minor-fault messages (page in the page cache, not mapped)
    uint64_t faults_pending = 0;    // faults answered "pending" (resolved later by a completion)
    uint64_t completions = 0;       // completions that resumed a pending fault
    uint64_t pending_table_full = 0; // faults retried because every pending slot was taken
    uint64_t pages_installed = 0;   // pages placed by UFFDIO_COPY/ZEROPAGE
    uint64_t wakes = 0;             // UFFDIO_WAKE calls
    uint64_t eexist = 0;            // installs that found the page already there (success)
    uint64_t eagain_retries = 0;
    uint64_t stale_faults = 0;      // faults on addresses no longer in a region (woken to retry)
    uint64_t sigbus_delivered = 0;  // faults answered with SIGBUS
    uint64_t batches = 0;           // read(2) calls that returned events
    // The memory budget (Config::memory_budget): file and store pages
    // resident now, against it; pages evicted (clean, and dirty ones written
    // back first); pages written back by eviction that failed (they stay);
    // touches that told the evictor a page is in use; faults that waited for
    // room under the budget; times the budget was opened (the overrun): by
    // the evictor, finding nothing it could evict while faults waited, and
    // for each fork, which reads every swapped page back first.
    uint64_t memory_budget = 0;
    uint64_t budget_resident_bytes = 0;
    uint64_t evictions_clean = 0;
    uint64_t evictions_dirty = 0;
    uint64_t eviction_write_errors = 0;
    uint64_t referenced_refaults = 0;
    uint64_t budget_waits = 0;
    uint64_t budget_overruns = 0;
    // The swap pager (anonymous memory under the budget): pages written to
    // swap and dropped (of them, clean ones dropped without a write), read
    // back, failed writes (the page stayed) and reads (SIGBUS), slots freed
    // because their page was written, freed or discarded; slots in use and
    // the swap's size in pages; times the swap was found full.
    bool swap_enabled = false;
    uint64_t swapped_out = 0;
    uint64_t swapped_in = 0;
    uint64_t swap_clean_drops = 0;
    uint64_t swap_write_errors = 0;
    uint64_t swap_read_errors = 0;
    uint64_t swap_slots_reclaimed = 0;
    uint64_t swap_slots_used = 0;
    uint64_t swap_slots_total = 0;
    uint64_t swap_full_events = 0;
    size_t committed = 0;           // bytes committed against the limit
    size_t commit_limit = 0;
    size_t region_count = 0;
    // The statistics endpoint (docs/stat.md): replies sent in full, and
    // connections refused because the peer was neither this process's
    // user nor root.
    uint64_t stat_replies = 0;
    uint64_t stat_refused = 0;
    std::vector<ThreadFaultCount> threads; // empty without UFFD_FEATURE_THREAD_ID
    bool thread_ids_available = false;
};

} // namespace faultline
