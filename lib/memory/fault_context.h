// memory/fault_context.h — one fault as an object sees it, and its answer.
//
// The fault service decodes a message, finds the region and builds a
// FaultContext; the region's object answers with an Outcome. Nothing here
// touches the kernel, so objects are tested with a fake PageSink.
#pragma once

#include "memory/fault_counters.h"
#include "memory/io_port.h"
#include "uffd/fill_result.h"
#include "uffd/modes.h"

#include <faultline/types.h>

#include <cstddef>
#include <cstdint>

namespace faultline::memory {

// Names a fault that was answered Pending: its slot in the fault service's
// pending table and that slot's generation (so a late or duplicate
// completion for a slot since reused is recognised and ignored). Packs into
// 64 bits, e.g. an io_uring user_data.
struct PendingToken {
    static constexpr uint32_t kNone = UINT32_MAX;
    uint32_t slot = kNone;
    uint32_t generation = 0;

    bool valid() const noexcept { return slot != kNone; }
    uint64_t pack() const noexcept { return uint64_t(generation) << 32 | slot; }
    static PendingToken unpack(uint64_t v) noexcept { return { uint32_t(v), uint32_t(v >> 32) }; }
};

// Where an object reports that the work behind a Pending answer is done (a
// worker produced the page, a read completed). Any thread may post; a
// handler thread then calls the object's resume_fault() for the token.
// post() never blocks and never allocates.
class CompletionPort {
public:
    virtual void post(PendingToken token, int64_t result) noexcept = 0;

protected:
    ~CompletionPort() = default;
};

// Fault-around limits in pages. The object picks a window between them
// (memory/objects/fault_around.h); min == max is a fixed window.
struct FaultAround {
    unsigned min_pages = 1;
    unsigned max_pages = 1;
};

struct FaultContext {
    uffd::FaultKind kind = uffd::FaultKind::Missing;
    bool write = false;          // the access was a write
    uintptr_t page = 0;          // page-aligned faulting address
    uintptr_t region_base = 0;   // fills never leave [region_base, region_end)
    uintptr_t region_end = 0;
    size_t object_offset = 0;    // byte offset in the object that region_base maps
    size_t page_size = 4096;
    FaultAround around;
    // Whether the fault-around window is filled before the faulting thread
    // is woken, or after (the object then answers with around_later and the
    // fault service calls fault_around() once the thread is woken).
    WakeOrder wake_order = WakeOrder::Adaptive;
    // Valid when the object may answer Pending; then it keeps the token and
    // posts it to `completions` once the page can be installed.
    PendingToken token;
    CompletionPort* completions = nullptr;
    // Where I/O the fault needs is queued (submitted at the batch's end).
    IoPort* io = nullptr;

    size_t object_page() const noexcept { return (page - region_base + object_offset) / page_size; }
    size_t object_page_of(uintptr_t address) const noexcept { return (address - region_base + object_offset) / page_size; }
    uintptr_t address_of(size_t object_page) const noexcept
    {
        return region_base + object_page * page_size - object_offset;
    }
    // The object pages the region maps: [first, end).
    size_t first_object_page() const noexcept { return object_offset / page_size; }
    size_t end_object_page() const noexcept { return (object_offset + (region_end - region_base)) / page_size; }
};

enum class Resolution : uint8_t {
    Installed,  // the page is there: wake the thread
    Pending,    // the object will post a completion for ctx.token later
    Retry,      // nothing installed; wake the thread, it faults again (transient)
    RegionGone, // the mapping disappeared under us; wake, the thread will see it
    MmGone,     // the process is exiting
    Sigbus,     // the page cannot be provided: SIGBUS to the faulting thread
    // Another handler thread has claimed the page (PageState::Filling) and
    // wakes its waiters once it settles it: nothing to do, no wake.
    InFlight,
};

struct Outcome {
    Resolution resolution = Resolution::Sigbus;
    FillKind kind = FillKind::Zero;
    uint32_t pages = 0;          // pages installed by this answer (window included)
    // The range whose waiters the fault service wakes besides the faulting
    // page: the window the object claimed and settled. Every page in it is
    // present, or its threads simply fault again; and a thread whose fault
    // was answered InFlight because of this claim must be in it. Empty
    // means the faulting page alone.
    uintptr_t wake_lo = 0;
    uintptr_t wake_hi = 0;
    // The object installed the faulting page only: after the wake, call
    // its fault_around() for the rest of the window.
    bool around_later = false;
    // A Sigbus answer the object must be told of once the SIGBUS has been
    // raised (VMObject::sigbus_raised): an object that clears SIGBUS
    // markers waits for the ones still being placed.
    bool sigbus_hook = false;

    static Outcome installed(FillKind kind, size_t pages, uintptr_t lo = 0, uintptr_t hi = 0) noexcept
    {
        return { Resolution::Installed, kind, uint32_t(pages), lo, hi, false };
    }
    static Outcome pending() noexcept { return { Resolution::Pending, FillKind::Zero, 0, 0, 0, false }; }
    static Outcome sigbus() noexcept { return { Resolution::Sigbus, FillKind::Zero, 0, 0, 0, false }; }
    static Outcome sigbus_with_hook() noexcept { return { Resolution::Sigbus, FillKind::Zero, 0, 0, 0, false, true }; }
    static Outcome in_flight() noexcept { return { Resolution::InFlight, FillKind::Zero, 0, 0, 0, false }; }
    // The outcome of a fill that did not succeed.
    static Outcome from_failure(const uffd::FillResult& r) noexcept
    {
        Resolution res = Resolution::Sigbus;
        switch (r.status) {
        case uffd::FillStatus::Done:
            res = Resolution::Installed;
            break;
        case uffd::FillStatus::Retry:
            res = Resolution::Retry;
            break;
        case uffd::FillStatus::RegionGone:
            res = Resolution::RegionGone;
            break;
        case uffd::FillStatus::MmGone:
            res = Resolution::MmGone;
            break;
        case uffd::FillStatus::Failed:
            res = Resolution::Sigbus;
            break;
        }
        return { res, FillKind::Zero, uint32_t(r.pages), 0, 0, false };
    }
};

} // namespace faultline::memory
