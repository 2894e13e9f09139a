#include "runtime/purger.h"

#include "os/virtual_memory.h"
#include "support/log.h"

#include <algorithm>
#include <cstring>
#include <sys/mman.h>

namespace faultline {

using memory::PageState;
using memory::PurgeableVMObject;
using memory::Volatility;

void Purger::add(boost::intrusive_ptr<PurgeableVMObject> object, uintptr_t base, bool committed)
{
    prune();
    entries_.push_back({ std::move(object), base, committed });
}

void Purger::prune()
{
    // An object only the registry still holds has no region left.
    std::erase_if(entries_, [](const Entry& e) { return e.object->use_count() == 1; });
}

void Purger::make_volatile(PurgeableVMObject& object, size_t first, size_t end, PurgePriority priority, bool committed)
{
    size_t newly = 0;
    auto& v = object.volatility();
    for (size_t i = first; i < end; ++i) {
        if (v.get(i) == Volatility::NonVolatile) {
            v.set(i, Volatility::Volatile);
            ++newly;
        }
    }
    // A span the range only partly covers keeps its place for the rest; the
    // range itself is now the most recently made volatile.
    object.spans().add(first, end, ++sequence_, priority);
    if (committed)
        ledger_.to_reclaimable(newly * page_);
}

size_t Purger::recommit_bytes(const PurgeableVMObject& object, size_t first, size_t end) const noexcept
{
    size_t fresh = 0;
    object.spans().for_each_overlapping(first, end, [&](const memory::VolatileSpans::Span& s) {
        for (size_t i = s.first; i < s.end; ++i) {
            const Volatility v = object.volatility().get(i);
            fresh += v == Volatility::Purged || v == Volatility::Dropped;
        }
    });
    return fresh * page_;
}

namespace {
void append(std::vector<Purger::Run>& runs, size_t page)
{
    if (!runs.empty() && runs.back().end == page)
        ++runs.back().end;
    else
        runs.push_back({ page, page + 1 });
}
} // namespace

Purger::Run Purger::make_nonvolatile(PurgeableVMObject& object, size_t first, size_t end, bool committed, std::vector<Run>& purged)
{
    size_t transfer = 0;
    Run changed { first, end };
    auto& v = object.volatility();
    object.spans().for_each_overlapping(first, end, [&](const memory::VolatileSpans::Span& s) {
        changed.first = std::min(changed.first, s.first);
        changed.end = std::max(changed.end, s.end);
        for (size_t i = s.first; i < s.end; ++i) {
            const Volatility was = v.get(i);
            if (was == Volatility::Volatile)
                ++transfer;
            if (was == Volatility::Purged)
                append(purged, i);
            v.set_keeping_poison(i, Volatility::NonVolatile);
        }
    });
    object.spans().remove(first, end);
    if (committed)
        ledger_.from_reclaimable(transfer * page_);
    return changed;
}

void Purger::take_poisoned(PurgeableVMObject& object, Run within, std::vector<Run>& poisoned)
{
    auto& v = object.volatility();
    for (size_t i = within.first; i < within.end; ++i)
        if (v.poisoned(i)) {
            append(poisoned, i);
            v.clear_poisoned(i);
        }
}

void Purger::retire(const memory::Region& region)
{
    auto* object = dynamic_cast<PurgeableVMObject*>(&region.object());
    if (!object)
        return;
    std::lock_guard guard(lock_);
    const size_t first = region.object_offset() / page_, end = first + region.size() / page_;
    size_t volatile_pages = 0, uncharged = 0;
    auto& v = object->volatility();
    object->spans().for_each_overlapping(first, end, [&](const memory::VolatileSpans::Span& s) {
        for (size_t i = s.first; i < s.end; ++i) {
            const Volatility was = v.get(i);
            volatile_pages += was == Volatility::Volatile;
            uncharged += was == Volatility::Purged || was == Volatility::Dropped;
            v.set(i, Volatility::NonVolatile);
        }
    });
    object->spans().remove(first, end);
    if (region.is_committed()) {
        ledger_.from_reclaimable(volatile_pages * page_);
        ledger_.add_unchecked(uncharged * page_);
    }
}

size_t Purger::volatile_resident_locked() const
{
    size_t pages = 0;
    for (const Entry& e : entries_)
        e.object->spans().for_each([&](const memory::VolatileSpans::Span& s) {
            pages += e.object->states().count_populated(s.first, s.end - s.first);
        });
    return pages * page_;
}

size_t Purger::volatile_resident() const
{
    std::lock_guard guard(lock_);
    return volatile_resident_locked();
}

PurgeStats Purger::totals() const
{
    PurgeStats s;
    std::lock_guard guard(lock_);
    for (const Entry& e : entries_) {
        const PurgeableVMObject& o = *e.object;
        o.spans().for_each([&](const memory::VolatileSpans::Span& span) {
            s.volatile_bytes += (span.end - span.first) * page_;
            s.volatile_resident += o.states().count_populated(span.first, span.end - span.first) * page_;
        });
        // Non-volatile populated pages: all populated pages minus the volatile ones.
        s.nonvolatile_resident += o.states().count_populated(0, o.page_count()) * page_;
        s.purged_refaults += o.counters().purged_refaults.load(std::memory_order_relaxed);
    }
    s.nonvolatile_resident -= std::min(s.nonvolatile_resident, s.volatile_resident);
    s.reclaimable = ledger_.reclaimable();
    s.purges = purges_.load();
    s.purged_bytes = purged_bytes_.load();
    s.vetoes = vetoes_.load();
    s.pressure_events = pressure_events.load();
    s.budget_purges = budget_purges_.load();
    s.commit_purges = commit_purges_.load();
    return s;
}

void Purger::set_callbacks(PurgeCallbacks callbacks)
{
    std::lock_guard guard(callbacks_lock_);
    callbacks_ = std::move(callbacks);
}

std::vector<Purger::Candidate> Purger::candidates(const PurgeRequest& request)
{
    std::vector<Candidate> out;
    std::lock_guard guard(lock_);
    prune();
    for (const Entry& e : entries_)
        e.object->spans().for_each([&](const memory::VolatileSpans::Span& s) {
            for (auto& x : request.exclude)
                if (x.object == e.object.get() && s.first < x.end && x.first < s.end)
                    return;
            out.push_back({ e.object, e.base, e.committed, s });
        });
    const bool lifo = config_.order == PurgeOrder::Lifo;
    std::sort(out.begin(), out.end(), [lifo](const Candidate& a, const Candidate& b) {
        if (a.span.priority != b.span.priority)
            return a.span.priority < b.span.priority;
        return lifo ? a.span.sequence > b.span.sequence : a.span.sequence < b.span.sequence;
    });
    return out;
}

PurgeResult Purger::purge(const PurgeRequest& in)
{
    PurgeRequest request = in;
    if (request.to_budget) {
        const size_t resident = volatile_resident();
        if (config_.budget == 0 || resident <= config_.budget)
            return {};
        request.resident_bytes = resident - config_.budget;
    }
    PurgeCallbacks callbacks;
    {
        std::lock_guard guard(callbacks_lock_);
        callbacks = callbacks_;
    }
    PurgeResult result;
    bool counted = false;
    for (const Candidate& c : candidates(request)) {
        if (result.purged_bytes >= request.resident_bytes && result.reclaimed_bytes >= request.reclaim_bytes)
            break;
        // Anything to drop? (A span purged before and not touched since is skipped.)
        {
            std::lock_guard guard(lock_);
            bool work = false;
            for (size_t i = c.span.first; i < c.span.end && !work; ++i)
                work = c.object->volatility().get(i) == Volatility::Volatile || c.object->states().populated(i);
            if (!work)
                continue;
        }
        PurgeEvent event;
        event.address = reinterpret_cast<void*>(c.base + c.span.first * page_);
        event.size = (c.span.end - c.span.first) * page_;
        event.priority = c.span.priority;
        event.reason = request.reason;
        if (callbacks.before_purge) {
            // No lock is held: the callback may call the runtime (spill the
            // span, even make it non-volatile, which the purge then respects).
            bool keep = false;
            try {
                keep = !callbacks.before_purge(event);
            } catch (...) {
                log::warn("a before-purge callback threw: the span at {} is kept", event.address);
                keep = true;
            }
            if (keep) {
                vetoes_.fetch_add(1, std::memory_order_relaxed);
                result.vetoed_bytes += event.size;
                continue;
            }
        }
        const size_t purged_before = result.purged_bytes;
        {
            std::lock_guard guard(lock_);
            purge_span(c, c.span.first, c.span.end, result);
        }
        if (!counted) {
            counted = true;
            if (request.reason == PurgeReason::Budget)
                budget_purges_.fetch_add(1, std::memory_order_relaxed);
            if (request.reason == PurgeReason::CommitLimit)
                commit_purges_.fetch_add(1, std::memory_order_relaxed);
        }
        if (callbacks.after_purge) {
            event.purged_bytes = result.purged_bytes - purged_before;
            try {
                callbacks.after_purge(event);
            } catch (...) {
                log::warn("an after-purge callback threw (ignored)");
            }
        }
    }
    return result;
}

void Purger::purge_span(const Candidate& c, size_t first, size_t end, PurgeResult& result)
{
    PurgeableVMObject& object = *c.object;
    auto& v = object.volatility();
    memory::PageStates& states = object.page_states();
    constexpr size_t kChunk = 4096;
    Volatility prior[kChunk];
    bool had[kChunk];
    unsigned char resident[kChunk];
    size_t charged = 0, purged = 0;
    for (size_t at = first; at < end;) {
        // The next run of volatile pages (the span may have lost pages to
        // set_nonvolatile or unmap since it was listed).
        while (at < end && v.get(at) == Volatility::NonVolatile)
            ++at;
        size_t run_end = at;
        while (run_end < end && run_end - at < kChunk && v.get(run_end) != Volatility::NonVolatile)
            ++run_end;
        if (at == run_end)
            break;
        const size_t n = run_end - at;
        // 1. Faults on these pages now wait for the wake below.
        for (size_t i = 0; i < n; ++i) {
            prior[i] = v.get(at + i);
            v.set_keeping_poison(at + i, Volatility::Purging);
        }
        // 2. Out of the page states, remembering what was there.
        for (size_t i = 0; i < n; ++i)
            had[i] = states.take(at + i) != PageState::Unpopulated;
        // 2b. The states are hints (page_states.h): a page can be in the
        // page tables with an Unpopulated record — filled by a touch that
        // raced a discard's forgetting, or left by a fill that failed part
        // way. Data in such a page would be dropped unreported, so the
        // kernel is asked too. A page installed after this is a fill that
        // claimed it after step 2, and step 4 sees its claim.
        const uintptr_t address = c.base + at * page_;
        if (mincore(reinterpret_cast<void*>(address), n * page_, resident) == 0) {
            for (size_t i = 0; i < n; ++i)
                had[i] = had[i] || (resident[i] & 1);
        } else {
            // Cannot tell (never expected: the arena is always mapped):
            // report every page rather than risk hiding a loss.
            std::fill_n(had, n, true);
        }
        // 3. Drop them.
        if (int rc = os::discard(address, n * page_); rc < 0)
            log::error("purge of {:#x}+{:#x}: madvise failed: {}", address, n * page_, strerror(-rc));
        // 4. Record. A page filled after step 2 shows up in the states now:
        // it may have been written before step 3, so it is reported.
        for (size_t i = 0; i < n; ++i) {
            const bool populated = had[i] || states.populated(at + i);
            purged += populated;
            charged += prior[i] == Volatility::Volatile;
            v.set_keeping_poison(at + i, populated || prior[i] == Volatility::Purged ? Volatility::Purged : Volatility::Dropped);
        }
        // 5. Threads that faulted on a Purging page were answered InFlight.
        (void)uffd_.wake(address, n * page_);
        at = run_end;
    }
    if (c.committed)
        ledger_.reclaim(charged * page_);
    result.purged_bytes += purged * page_;
    result.reclaimed_bytes += c.committed ? charged * page_ : 0;
    purges_.fetch_add(1, std::memory_order_relaxed);
    purged_bytes_.fetch_add(purged * page_, std::memory_order_relaxed);
    object.counters().purges.fetch_add(1, std::memory_order_relaxed);
    object.counters().purged_bytes.fetch_add(purged * page_, std::memory_order_relaxed);
}

} // namespace faultline
