// memory/objects/purgeable_vm_object.h — anonymous memory whose pages can be
// made volatile and purged (SerenityOS's purgeable AnonymousVMObject).
//
// It is zero-filled anonymous memory (private: a purgeable region is never
// shared) with, per page, a volatility (volatile_pages.h) and, per object,
// the volatile spans that order purging (volatile_spans.h). The runtime's
// purger drops volatile pages and records them; this object answers the
// faults on them:
//   - a page being purged: InFlight — the purger wakes the range once its
//     pages are settled, so the thread retries against the new state;
//   - a purged page, still volatile: zeros, SIGBUS, or (Callback) Pending
//     while a worker asks the user's callback, by the region's option;
//   - anything else: as anonymous memory. Fault-around never fills a page
//     that is being purged, nor a purged page that must fault on its own.
#pragma once

#include "memory/objects/anonymous_vm_object.h"
#include "memory/objects/volatile_pages.h"
#include "memory/objects/volatile_spans.h"
#include "memory/purged_access_port.h"

#include <faultline/purgeable.h>
#include <faultline/result.h>

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include <atomic>
#include <functional>

namespace faultline::memory {

class PurgeableVMObject final : public AnonymousVMObject {
public:
    static Result<boost::intrusive_ptr<PurgeableVMObject>> try_create(size_t size, size_t page_size, PurgedAccess mode,
        std::function<bool(void*)> on_purged_access, PurgedAccessPort* port);

    const char* kind_name() const noexcept override { return "purgeable"; }
    Outcome handle_fault(const FaultContext&, PageSink&) noexcept override;
    Outcome resume_fault(const FaultContext&, PageSink&, int64_t result) noexcept override;
    void sigbus_raised(const FaultContext&) noexcept override;

    PurgedAccess purged_access() const noexcept { return mode_; }
    const std::function<bool(void*)>& on_purged_access() const noexcept { return on_purged_access_; }
    // Worker thread: the user's verdict on a touch of purged page `page`.
    bool ask_purged_access(void* page) const;

    // Purge lock held for writes (the runtime's PurgeableRegions and Purger).
    VolatilePages& volatility() noexcept { return volatility_; }
    const VolatilePages& volatility() const noexcept { return volatility_; }
    VolatileSpans& spans() noexcept { return spans_; }
    const VolatileSpans& spans() const noexcept { return spans_; }
    // Page states, writable: the purger takes pages out of them.
    PageStates& page_states() noexcept { return states_; }

    // set_nonvolatile, after making pages non-volatile and before clearing
    // their SIGBUS markers: returns once no handler thread is still placing
    // a marker it decided on while a page was purged. A marker placed after
    // the clearing would stay on a non-volatile page, and every touch of it
    // would raise SIGBUS. The wait is bounded by one fault's handling.
    void wait_for_sigbus_deliveries() const noexcept;

    struct Counters {
        std::atomic<uint64_t> purges { 0 };
        std::atomic<uint64_t> purged_bytes { 0 };
        std::atomic<uint64_t> purged_refaults { 0 };
    };
    Counters& counters() noexcept { return counters_; }
    const Counters& counters() const noexcept { return counters_; }

private:
    PurgeableVMObject(size_t size, size_t page_size, PageStates states, VolatilePages volatility, PurgedAccess mode,
        std::function<bool(void*)> on_purged_access, PurgedAccessPort* port) noexcept;
    bool may_fill_around(size_t page) const noexcept override;
    // A handler thread about to answer a touch of purged page `page` with
    // SIGBUS: true (the page is marked poisoned, the answer must carry the
    // hook) if the page is still purged, false if it changed meanwhile.
    bool begin_sigbus(size_t page) noexcept;

    VolatilePages volatility_;
    VolatileSpans spans_;
    PurgedAccess mode_;
    std::function<bool(void*)> on_purged_access_;
    PurgedAccessPort* port_;
    Counters counters_;
    // SIGBUS answers decided and not yet raised (begin_sigbus ..
    // sigbus_raised). With the volatility bytes this is a Dekker pair: a
    // handler counts itself in, then reads the volatility; set_nonvolatile
    // writes the volatility, then reads the count (read-modify-writes on one
    // atomic, so one of them sees the other).
    mutable std::atomic<uint32_t> delivering_ { 0 };
};

} // namespace faultline::memory
