#include "fault/dispatcher.h"

#include "support/log.h"

#include <unistd.h>

namespace faultline::fault {

using memory::Outcome;
using memory::PendingToken;
using memory::Region;
using memory::Resolution;

namespace {

uffd::FaultKind decode_kind(uint64_t flags) noexcept
{
    if (flags & UFFD_PAGEFAULT_FLAG_WP)
        return uffd::FaultKind::WriteProtect;
    if (flags & UFFD_PAGEFAULT_FLAG_MINOR)
        return uffd::FaultKind::Minor;
    return uffd::FaultKind::Missing;
}

} // namespace

Dispatcher::Dispatcher(memory::RegionTree& tree, PendingFaultTable& pending, CompletionQueue& completions,
    ServiceCounters& counters, ThreadFaultCounters& threads, const DispatchOptions& options) noexcept
    : tree_(tree)
    , pending_(pending)
    , completions_(completions)
    , counters_(counters)
    , threads_(threads)
    , options_(options)
    , page_size_(size_t(sysconf(_SC_PAGESIZE)))
{
}

memory::FaultContext Dispatcher::context_for(Region& region, uintptr_t page, uffd::FaultKind kind, bool write,
    PendingToken token, FaultPort& port) const noexcept
{
    memory::FaultContext ctx = region.fault_context(page, kind, write, page_size_);
    // File regions read ahead within their own limits.
    ctx.around = region.readahead().max_pages ? region.readahead() : options_.around;
    ctx.io = port.io();
    ctx.wake_order = options_.wake_order;
    ctx.token = token;
    ctx.completions = token.valid() ? &completions_ : nullptr;
    return ctx;
}

void Dispatcher::serve(const uffd_msg* messages, size_t count, FaultPort& port) noexcept
{
    // Everything below lives on this thread's stack: nothing is allocated
    // per fault.
    BatchEnd end(page_size_);

    for (size_t i = 0; i < count && i < kBatch; ++i) {
        const uffd_msg& msg = messages[i];
        if (msg.event != UFFD_EVENT_PAGEFAULT) {
            // We enable no non-cooperative events; anything else is a kernel
            // we do not understand. Ignoring it cannot leave a thread waiting.
            log::debug("ignoring userfaultfd event {}", int(msg.event));
            continue;
        }
        ServiceCounters::bump(counters_.fault_events);
        const uintptr_t page = uintptr_t(msg.arg.pagefault.address) & ~uintptr_t(page_size_ - 1);
        const uffd::FaultKind kind = decode_kind(msg.arg.pagefault.flags);
        const bool write = msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE;
        const int tid = options_.have_thread_id ? int(msg.arg.pagefault.feat.ptid) : 0;
        threads_.record(tid);
        if (kind == uffd::FaultKind::WriteProtect)
            ServiceCounters::bump(counters_.write_protect_faults);
        else if (kind == uffd::FaultKind::Minor)
            ServiceCounters::bump(counters_.minor_faults);

        PendingFaultTable::Claim claim = pending_.claim(page);
        if (claim.status == PendingFaultTable::ClaimStatus::Duplicate) {
            ServiceCounters::bump(counters_.deduplicated);
            continue;
        }
        if (claim.status == PendingFaultTable::ClaimStatus::Full)
            ServiceCounters::bump(counters_.table_full);

        Region* region = tree_.acquire_for_fault(page);
        if (!region) {
            // The region was unmapped after the fault was queued. The wake
            // makes the thread retry; the range is PROT_NONE by now (or
            // belongs to a new region), so it gets SIGSEGV or a fresh fault.
            // A write-protect fault there is answered by lifting the
            // protection, so that a stray one can never repeat forever.
            ServiceCounters::bump(counters_.stale);
            log::debug("fault at {:#x}: no region (unmapped while in flight)", page);
            if (kind == uffd::FaultKind::WriteProtect)
                (void)port.write_protect(page, page_size_, false);
            end.release_later(claim.token);
            end.wakes.add(page, page_size_, port);
            continue;
        }
        memory::FaultContext ctx = context_for(*region, page, kind, write, claim.token, port);
        Outcome outcome = region->handle_fault(ctx, port);
        log::trace("fault at {:#x} {} kind {} tid {} -> {}", page, write ? "write" : "read", int(kind), tid, int(outcome.resolution));
        (void)settle(outcome, *region, ctx, tid, claim.token, false, end, port);
    }

    finish(end, port);
}

void Dispatcher::finish(BatchEnd& end, FaultPort& port) noexcept
{
    // The batch's reads go to the kernel in one submission.
    port.submit_io();
    for (size_t i = 0; i < end.release_count; ++i)
        pending_.release(end.releases[i]);
    end.release_count = 0;
    ServiceCounters::bump(counters_.wakes, end.wakes.flush(port));

    // Work the objects left for after the wake (WakeOrder, readahead): done
    // while the woken threads already run. A window page a thread touches
    // before it is installed costs it another fault (answered with EEXIST
    // and a wake), which is why streams wait for their own window and only
    // the next one is filled here (docs/performance.md). The pages claimed
    // are woken once settled: a fault that found one of them Filling
    // meanwhile was left to this wake.
    for (size_t i = 0; i < end.deferred_count; ++i) {
        Region& region = *end.deferred[i].region;
        memory::FaultContext ctx = context_for(region, end.deferred[i].page, uffd::FaultKind::Missing, end.deferred[i].write, {}, port);
        for (unsigned depth = 0; depth < kReadaheadDepth; ++depth) {
            Outcome around = region.fault_around(ctx, port);
            if (around.wake_hi <= around.wake_lo)
                break;
            WakeSet around_wakes(page_size_);
            around_wakes.add(around.wake_lo, around.wake_hi - around.wake_lo, port);
            ServiceCounters::bump(counters_.wakes, around_wakes.flush(port));
        }
        tree_.release_after_fault(region);
    }
    end.deferred_count = 0;
    // Reads the deferred work queued (file readahead).
    port.submit_io();
}

bool Dispatcher::settle(const Outcome& outcome, Region& region, const memory::FaultContext& ctx, int tid,
    PendingToken token, bool resumed, BatchEnd& end, FaultPort& port) noexcept
{
    WakeSet& wakes = end.wakes;
    const uintptr_t page = ctx.page;
    // Waiters on the range the object claimed are woken whatever the answer
    // (a fault on a claimed page was left to this wake).
    if (outcome.wake_hi > outcome.wake_lo)
        wakes.add(outcome.wake_lo, outcome.wake_hi - outcome.wake_lo, port);
    switch (outcome.resolution) {
    case Resolution::InFlight:
        // Another handler's claim covers the page: its wake releases this
        // thread (it settles the page first, then wakes).
        ServiceCounters::bump(counters_.deduplicated);
        end.release_later(token);
        break;
    case Resolution::Pending:
        if (token.valid()) {
            ServiceCounters::bump(counters_.pending);
            auto early = resumed ? pending_.repark(token) : pending_.park(token, { &region, page, ctx.kind, ctx.write, tid });
            if (!early)
                return true; // the region stays pinned until the completion
            // The completion overtook the answer: resume now.
            ServiceCounters::bump(counters_.completions);
            memory::Outcome next = region.resume_fault(ctx, port, *early);
            return settle(next, region, ctx, tid, token, true, end, port);
        }
        // An object must not answer Pending without a token; treat it as a
        // transient failure so the thread faults again rather than waits
        // for a completion that cannot find it.
        log::error("fault at {:#x}: object answered pending without a token", page);
        end.release_later(token);
        wakes.add(page, page_size_, port);
        break;
    case Resolution::Installed: {
        // Released before the wake (finish()): a duplicate read after the
        // release is served on its own; one read before it is covered by
        // the wake.
        end.release_later(token);
        wakes.add(page, page_size_, port);
        if (outcome.around_later && end.deferred_count < kBatch) {
            end.deferred[end.deferred_count++] = { &region, page, ctx.write };
            return true; // after the wake (finish()), then unpin
        }
        break;
    }
    case Resolution::Sigbus:
        ServiceCounters::bump(counters_.sigbus);
        log::debug("fault at {:#x} cannot be served: delivering SIGBUS", page);
        region.note_sigbus();
        (void)port.raise_sigbus(page, tid, region.access());
        if (outcome.sigbus_hook)
            region.object().sigbus_raised(ctx);
        end.release_later(token);
        wakes.add(page, page_size_, port);
        break;
    case Resolution::Retry:
    case Resolution::RegionGone:
    case Resolution::MmGone:
        // Woken even when the process is said to be exiting: a wake costs
        // nothing then, and a thread must never be left waiting on a
        // misreported ESRCH.
        end.release_later(token);
        wakes.add(page, page_size_, port);
        break;
    }
    tree_.release_after_fault(region);
    return false;
}

void Dispatcher::resume(const CompletionQueue::Completion* completions, size_t count, FaultPort& port) noexcept
{
    BatchEnd end(page_size_);
    for (size_t i = 0; i < count; ++i) {
        PendingFaultTable::Parked parked;
        if (!pending_.take(completions[i].token, &parked, completions[i].result)) {
            // A completion for a slot that is no longer parked (posted
            // twice, or after the fault ended): nothing waits on it.
            ServiceCounters::bump(counters_.stale_completions);
            continue;
        }
        ServiceCounters::bump(counters_.completions);
        Region& region = *parked.region;
        memory::FaultContext ctx = context_for(region, parked.page, parked.kind, parked.write, completions[i].token, port);
        Outcome outcome = region.resume_fault(ctx, port, completions[i].result);
        (void)settle(outcome, region, ctx, parked.tid, completions[i].token, true, end, port);
    }
    finish(end, port);
}

} // namespace faultline::fault
