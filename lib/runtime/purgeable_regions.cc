#include "runtime/purgeable_regions.h"

#include "os/virtual_memory.h"
#include "support/log.h"
#include "support/try.h"

#include <cstring>

namespace faultline {

using memory::PurgeableVMObject;
using memory::Region;

namespace {
// Attempts at making room before an allocation or re-commit gives up: other
// threads may take the room a purge made.
constexpr int kChargeAttempts = 4;
}

Result<void> PurgeableRegions::ensure_worker()
{
    std::lock_guard g(worker_lock_);
    if (worker_)
        return {};
    worker_ = TRY(PurgeWorker::start(purger_, config_, features_.has(os::Feature::Psi)));
    active_.store(worker_.get(), std::memory_order_release);
    return {};
}

Result<void*> PurgeableRegions::allocate(size_t size, const PurgeableOptions& p)
{
    MapOptions o;
    o.size = size;
    o.alignment = p.alignment;
    o.address = p.address;
    o.access = p.access;
    o.max_access = p.max_access;
    o.flags = p.flags | RegionFlags::Purgeable;
    o.name = p.name;
    return allocate(o, p.purged_access, p.on_purged_access);
}

Result<void*> PurgeableRegions::allocate(const MapOptions& in, PurgedAccess mode, std::function<bool(void*)> on_purged_access)
{
    MapOptions o = in;
    o.flags = o.flags | RegionFlags::Purgeable;
    if (has(o.flags, RegionFlags::Shared))
        return fail(EINVAL, "purgeable regions are private anonymous memory (Shared is refused)");
    if (has(o.flags, RegionFlags::Stack))
        return fail(EINVAL, "a stack cannot be purgeable");
    TRY(mapper_.validate(o));
    TRY(ensure_worker());
    auto object = TRY(PurgeableVMObject::try_create(o.size, page_, mode, std::move(on_purged_access), worker()));
    const bool committed = !has(o.flags, RegionFlags::NoReserve);
    if (committed)
        TRY(charge(o.size));
    std::lock_guard api(api_lock_);
    auto mapped = mapper_.map(o, object, committed);
    if (!mapped) {
        if (committed)
            ledger_.uncharge(o.size);
        return mapped;
    }
    std::lock_guard purge(purger_.lock());
    purger_.add(std::move(object), uintptr_t(*mapped), committed);
    return mapped;
}

Result<std::vector<PurgeableRegions::Target>> PurgeableRegions::resolve(uintptr_t address, size_t size) const
{
    TRY(ops_.validate_range(address, size));
    std::vector<Target> targets;
    for (Region* r : TRY(ops_.covering(address, size, {}))) {
        auto* object = dynamic_cast<PurgeableVMObject*>(&r->object());
        if (!object)
            return failf(EINVAL, "region '%s' at %#lx is not purgeable", r->name().c_str(), (unsigned long)r->base());
        const uintptr_t lo = std::max(address, r->base()), hi = std::min(address + size, r->end());
        const size_t first = (r->object_offset() + (lo - r->base())) / page_;
        targets.push_back({ r, object, first, first + (hi - lo) / page_ });
    }
    return targets;
}

Result<void> PurgeableRegions::set_volatile(uintptr_t address, size_t size, VolatileOptions options)
{
    if (uint8_t(options.priority) > uint8_t(PurgePriority::High))
        return fail(EINVAL, "unknown purge priority");
    {
        std::lock_guard api(api_lock_);
        auto targets = TRY(resolve(address, size));
        std::lock_guard purge(purger_.lock());
        for (const Target& t : targets)
            purger_.make_volatile(*t.object, t.first, t.end, options.priority, t.region->is_committed());
    }
    // The budget holds when set_volatile returns (unless called from a purge
    // callback: the worker checks it once the callback is done).
    if (config_.budget)
        if (PurgeWorker* w = worker(); w && !w->on_worker_thread()) {
            PurgeRequest r;
            r.reason = PurgeReason::Budget;
            r.to_budget = true;
            (void)w->run(r);
        }
    return {};
}

Result<NonVolatileResult> PurgeableRegions::set_nonvolatile(uintptr_t address, size_t size)
{
    for (int attempt = 0; attempt < kChargeAttempts; ++attempt) {
        PurgeRequest room;
        {
            std::lock_guard api(api_lock_);
            auto targets = TRY(resolve(address, size));
            std::lock_guard purge(purger_.lock());
            size_t needed = 0;
            for (const Target& t : targets)
                if (t.region->is_committed())
                    needed += purger_.recommit_bytes(*t.object, t.first, t.end);
            if (auto charged = needed ? ledger_.charge(needed) : Result<void> {}; !charged) {
                // Room may be made by purging other volatile memory, never
                // this range's own (that would lose what ENOMEM promises to keep).
                const size_t shortfall = ledger_.shortfall(needed);
                PurgeWorker* w = worker();
                if (shortfall == SIZE_MAX || !w || w->on_worker_thread() || attempt + 1 == kChargeAttempts)
                    return std::unexpected(charged.error());
                room.reason = PurgeReason::CommitLimit;
                room.reclaim_bytes = shortfall;
                for (const Target& t : targets)
                    room.exclude.push_back({ t.object, t.first, t.end });
            } else {
                NonVolatileResult result;
                for (const Target& t : targets) {
                    std::vector<Purger::Run> purged, poisoned;
                    const Purger::Run changed = purger_.make_nonvolatile(*t.object, t.first, t.end, t.region->is_committed(), purged);
                    // A touch that found a page purged may still be placing
                    // its SIGBUS marker: let it land, then clear them all.
                    t.object->wait_for_sigbus_deliveries();
                    purger_.take_poisoned(*t.object, changed, poisoned);
                    clear_poison(t, poisoned);
                    for (const Purger::Run& run : purged) {
                        const uintptr_t at = t.region->base() + run.first * page_ - t.region->object_offset();
                        const size_t bytes = (run.end - run.first) * page_;
                        auto& ranges = result.purged_ranges;
                        if (!ranges.empty() && uintptr_t(ranges.back().address) + ranges.back().size == at)
                            ranges.back().size += bytes;
                        else
                            ranges.push_back({ reinterpret_cast<void*>(at), bytes });
                    }
                }
                result.purged = !result.purged_ranges.empty();
                return result;
            }
        }
        TRY(worker()->run(room));
    }
    return fail(ENOMEM, "commit limit reached");
}

void PurgeableRegions::clear_poison(const Target& t, const std::vector<Purger::Run>& runs)
{
    for (const Purger::Run& run : runs) {
        const uintptr_t at = t.region->base() + run.first * page_ - t.region->object_offset();
        const size_t len = (run.end - run.first) * page_;
        // A poison marker goes with the page table entry; a SIGBUS mapping
        // (the fallback without UFFDIO_POISON) needs fresh arena memory,
        // registered again, with the region's access and name.
        if (features_.has(os::Feature::Poison)) {
            if (int rc = os::discard(at, len); rc < 0)
                log::error("cannot clear SIGBUS markers at {:#x}: {}", at, strerror(-rc));
            continue;
        }
        if (auto reset = arena_.reset({ at, len }, uffd_); !reset) {
            log::error("cannot clear SIGBUS mappings at {:#x}: {}", at, reset.error().message());
            continue;
        }
        (void)os::protect(at, len, int(t.region->access()));
        if (!t.region->name().empty() && features_.has(os::Feature::AnonName))
            (void)os::set_anon_name(at, len, t.region->name().c_str());
    }
}

Result<void> PurgeableRegions::charge(size_t bytes)
{
    for (int attempt = 0;; ++attempt) {
        auto charged = ledger_.charge(bytes);
        if (charged)
            return {};
        const size_t shortfall = ledger_.shortfall(bytes);
        PurgeWorker* w = worker();
        // Purging cannot help (the limit is passed without volatile memory),
        // or would have to wait for itself (an allocation from a callback).
        if (shortfall == SIZE_MAX || shortfall == 0 || !w || w->on_worker_thread() || attempt + 1 == kChargeAttempts)
            return charged;
        PurgeRequest r;
        r.reason = PurgeReason::CommitLimit;
        r.reclaim_bytes = shortfall;
        auto purged = w->run(r);
        if (!purged || purged->reclaimed_bytes == 0)
            return charged;
    }
}

Result<PurgeResult> PurgeableRegions::purge(size_t bytes)
{
    if (bytes == 0)
        return fail(EINVAL, "purge of 0 bytes");
    PurgeWorker* w = worker();
    if (!w)
        return PurgeResult {}; // no purgeable region was ever mapped: nothing is volatile
    PurgeRequest r;
    r.reason = PurgeReason::Explicit;
    r.resident_bytes = bytes;
    r.reclaim_bytes = bytes == kPurgeAll ? kPurgeAll : 0;
    return w->run(r);
}

Result<void> PurgeableRegions::set_callbacks(PurgeCallbacks callbacks)
{
    purger_.set_callbacks(std::move(callbacks));
    return {};
}

PurgeStats PurgeableRegions::stats() const
{
    PurgeStats s = purger_.totals();
    PurgeWorker* w = const_cast<PurgeableRegions*>(this)->worker();
    s.pressure_trigger_open = w && w->pressure_trigger_open();
    return s;
}

void PurgeableRegions::stop() noexcept
{
    std::lock_guard g(worker_lock_);
    if (worker_)
        worker_->stop();
}

void PurgeableRegions::abandon() noexcept
{
    if (worker_)
        worker_->abandon();
}

} // namespace faultline
