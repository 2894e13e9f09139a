// faultline/purgeable.h — value types of purgeable memory (docs/purgeable.md).
//
// A purgeable region is private anonymous memory whose pages can be made
// volatile: while they are, the runtime may drop them at any moment to make
// room (an explicit purge, a budget, memory pressure, an allocation that
// would pass the commit limit). Making them non-volatile again tells exactly
// which page ranges were dropped meanwhile.
#pragma once

#include <faultline/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace faultline {

// Purge classes, purged in this order: everything Obsolete first, then Low,
// Normal and High. Within a class the runtime's PurgeOrder decides.
enum class PurgePriority : uint8_t {
    Obsolete = 0,
    Low = 1,
    Normal = 2,
    High = 3,
};

// Within a priority class: Fifo purges what was made volatile longest ago
// first (least recently made volatile), Lifo the most recent first.
enum class PurgeOrder : uint8_t {
    Fifo,
    Lifo,
};

// What a touch of a purged page does while the page is still volatile.
enum class PurgedAccess : uint8_t {
    // Reads zeros (a fresh zero-filled page), as after MADV_DONTNEED.
    Zero,
    // SIGBUS to the touching thread, so that "used without pinning" is caught
    // where it happens. The page keeps raising SIGBUS until it is made
    // non-volatile (it then reads zeros).
    Sigbus,
    // Calls PurgeableOptions::on_purged_access on a runtime worker thread
    // (never a fault handler) while the touching thread waits; it returns
    // true for zeros, false (or throws) for SIGBUS.
    Callback,
};

// A range of bytes, page aligned.
struct PageRange {
    void* address = nullptr;
    size_t size = 0;
    bool operator==(const PageRange&) const = default;
};

// How a purgeable region is placed and behaves (Runtime::allocate_purgeable).
struct PurgeableOptions {
    size_t alignment = 0;               // as MapOptions
    void* address = nullptr;            // as MapOptions
    Access access = Access::ReadWrite;
    Access max_access = Access::None;
    // Shared and Stack are refused (EINVAL); Immutable and NoReserve are
    // allowed. Purgeable is implied.
    RegionFlags flags = RegionFlags::None;
    std::string name;
    PurgedAccess purged_access = PurgedAccess::Zero;
    // PurgedAccess::Callback: called with the page's address on the purge
    // worker's touch thread while the touching thread waits. It must not
    // touch that page, nor purged pages of Callback regions, nor call the
    // runtime: the waiting fault pins its region, and an unmap of it waits
    // for this answer with the runtime's lock held (docs/purgeable.md).
    std::function<bool(void* page)> on_purged_access;
};

// set_volatile's options.
struct VolatileOptions {
    PurgePriority priority = PurgePriority::Normal;
};

// What set_nonvolatile found.
struct NonVolatileResult {
    bool purged = false;                // some page of the range was purged while volatile
    std::vector<PageRange> purged_ranges; // exactly those pages, coalesced, in address order
};

// Runtime::purge(kPurgeAll, ...) purges every volatile page.
inline constexpr size_t kPurgeAll = SIZE_MAX;

// What one purge achieved.
struct PurgeResult {
    size_t purged_bytes = 0;    // resident volatile bytes dropped (and reported to set_nonvolatile)
    size_t reclaimed_bytes = 0; // commit charge released (volatile pages not purged before)
    size_t vetoed_bytes = 0;    // volatile bytes a before-purge callback kept
};

// Why a purge happens (PurgeEvent::reason).
enum class PurgeReason : uint8_t {
    Explicit,    // Runtime::purge
    Budget,      // volatile resident bytes above PurgeConfig::budget
    Pressure,    // a memory-pressure (PSI) event
    CommitLimit, // an allocation or re-commit that would pass the commit limit
};

// One volatile span (the range of one set_volatile call, or what is left of
// it) about to be purged, or just purged.
struct PurgeEvent {
    void* address = nullptr;
    size_t size = 0;
    PurgePriority priority = PurgePriority::Normal;
    PurgeReason reason = PurgeReason::Explicit;
    size_t purged_bytes = 0; // after-purge only: resident bytes dropped
};

// Called on the runtime's purge worker thread, never on a fault-handler
// thread. before_purge returning false (or throwing) vetoes the span for
// this purge (e.g. to spill it first); after_purge is told what was dropped.
// Both may call the runtime, except Runtime::purge (EDEADLK there).
struct PurgeCallbacks {
    std::function<bool(const PurgeEvent&)> before_purge;
    std::function<void(const PurgeEvent&)> after_purge;
};

// Who purges, besides Runtime::purge (Config::purge).
struct PurgeConfig {
    PurgeOrder order = PurgeOrder::Fifo;
    // Volatile resident bytes allowed; above it the runtime purges (0 = no
    // budget). Checked when set_volatile returns and every
    // budget_interval_ms while volatile memory exists.
    size_t budget = 0;
    unsigned budget_interval_ms = 200;
    // Memory pressure: a PSI trigger on the cgroup's memory.pressure (cgroup
    // v2) or /proc/pressure/memory. Empty = no pressure trigger.
    std::string pressure_trigger = "some 150000 2000000";
    // Resident volatile bytes purged per pressure event (0 = all of them).
    size_t pressure_purge_bytes = 0;
};

// Totals over every purgeable region (RuntimeStats::purge).
struct PurgeStats {
    size_t volatile_bytes = 0;        // bytes of pages marked volatile (purged or not)
    size_t volatile_resident = 0;     // of those, populated (resident or zero-mapped) and not purged
    size_t nonvolatile_resident = 0;  // populated non-volatile bytes of purgeable regions
    size_t reclaimable = 0;           // commit charge volatile pages handed over (purging releases it)
    uint64_t purges = 0;              // spans purged
    uint64_t purged_bytes = 0;        // resident bytes dropped
    uint64_t purged_refaults = 0;     // faults on purged volatile pages
    uint64_t vetoes = 0;              // spans a before-purge callback kept
    uint64_t pressure_events = 0;     // PSI (or injected) pressure events handled
    uint64_t budget_purges = 0;       // purges started by the budget
    uint64_t commit_purges = 0;       // purges started by the commit limit
    bool pressure_trigger_open = false; // a PSI trigger is being watched
};

} // namespace faultline
