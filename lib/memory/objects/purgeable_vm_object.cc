#include "memory/objects/purgeable_vm_object.h"

#include <new>
#include <thread>

namespace faultline::memory {

Result<boost::intrusive_ptr<PurgeableVMObject>> PurgeableVMObject::try_create(size_t size, size_t page_size, PurgedAccess mode,
    std::function<bool(void*)> on_purged_access, PurgedAccessPort* port)
{
    if (size == 0 || size % page_size != 0)
        return fail(EINVAL, "object size must be a non-zero multiple of the page size");
    if (mode != PurgedAccess::Zero && mode != PurgedAccess::Sigbus && mode != PurgedAccess::Callback)
        return fail(EINVAL, "unknown purged_access");
    if (mode == PurgedAccess::Callback && (!on_purged_access || !port))
        return fail(EINVAL, "PurgedAccess::Callback needs on_purged_access");
    auto states = PageStates::create(size / page_size);
    if (!states)
        return std::unexpected(states.error());
    auto volatility = VolatilePages::create(size / page_size);
    if (!volatility)
        return std::unexpected(volatility.error());
    auto* object = new (std::nothrow)
        PurgeableVMObject(size, page_size, std::move(*states), std::move(*volatility), mode, std::move(on_purged_access), port);
    if (!object)
        return fail(ENOMEM, "out of memory for VMObject");
    return boost::intrusive_ptr<PurgeableVMObject>(object);
}

PurgeableVMObject::PurgeableVMObject(size_t size, size_t page_size, PageStates states, VolatilePages volatility,
    PurgedAccess mode, std::function<bool(void*)> on_purged_access, PurgedAccessPort* port) noexcept
    : AnonymousVMObject(size, page_size, std::move(states), -1)
    , volatility_(std::move(volatility))
    , mode_(mode)
    , on_purged_access_(std::move(on_purged_access))
    , port_(port)
{
    filtered_ = true;
}

bool PurgeableVMObject::may_fill_around(size_t page) const noexcept
{
    const Volatility v = volatility_.get(page);
    // A page being purged is the purger's until it wakes the range. A purged
    // page is left to fault on its own, whatever the mode: with SIGBUS or the
    // callback, filled here as a neighbour it would read zeros silently; with
    // zeros, filling it would take back the memory the purge just gave up for
    // a page nobody touched (a stream's window filled after its thread was
    // woken could land right after a purge and undo it).
    return v != Volatility::Purging && v != Volatility::Purged;
}

Outcome PurgeableVMObject::handle_fault(const FaultContext& ctx, PageSink& sink) noexcept
{
    if (ctx.kind != uffd::FaultKind::Missing)
        return AnonymousVMObject::handle_fault(ctx, sink);
    const size_t page = ctx.object_page();
    switch (volatility_.get(page)) {
    case Volatility::Purging:
        // The purger stores the page's final state and then wakes its range:
        // this thread's message was queued before that wake (docs/purgeable.md).
        return Outcome::in_flight();
    case Volatility::Purged:
        counters_.purged_refaults.fetch_add(1, std::memory_order_relaxed);
        if (mode_ == PurgedAccess::Sigbus) {
            if (begin_sigbus(page))
                return Outcome::sigbus_with_hook();
            // Made non-volatile (or purged again) meanwhile: answer
            // against what the page is now.
            return handle_fault(ctx, sink);
        }
        if (mode_ == PurgedAccess::Callback) {
            // The callback runs on the purge worker. Without a pending slot
            // (the table is full) or room in the worker's queue, the thread
            // simply faults again.
            if (!ctx.token.valid() || !ctx.completions || !port_->post(*this, ctx.page, ctx.token, *ctx.completions))
                return Outcome { Resolution::Retry, FillKind::Zero, 0, 0, 0, false };
            return Outcome::pending();
        }
        break;
    default:
        break;
    }
    return AnonymousVMObject::handle_fault(ctx, sink);
}

Outcome PurgeableVMObject::resume_fault(const FaultContext& ctx, PageSink& sink, int64_t result) noexcept
{
    // The callback refused zeros: SIGBUS, unless the page was made
    // non-volatile while it was asked (the touch then gets the zeros a
    // non-volatile purged page holds).
    if (result < 0 && begin_sigbus(ctx.object_page()))
        return Outcome::sigbus_with_hook();
    // The callback allowed zeros: the page alone (its neighbours may be
    // purged pages that must ask for themselves).
    return fill_window(ctx, sink, Window { ctx.object_page(), 1 }, false);
}

bool PurgeableVMObject::begin_sigbus(size_t page) noexcept
{
    delivering_.fetch_add(1, std::memory_order_seq_cst);
    if (volatility_.get(page) == Volatility::Purged) {
        volatility_.mark_poisoned(page);
        return true;
    }
    delivering_.fetch_sub(1, std::memory_order_release);
    return false;
}

void PurgeableVMObject::sigbus_raised(const FaultContext&) noexcept
{
    delivering_.fetch_sub(1, std::memory_order_release);
}

void PurgeableVMObject::wait_for_sigbus_deliveries() const noexcept
{
    // A read-modify-write, not a load: ordered after the volatility stores
    // that came before it (see delivering_).
    if (delivering_.fetch_add(0, std::memory_order_seq_cst) == 0)
        return;
    while (delivering_.load(std::memory_order_acquire) != 0)
        std::this_thread::yield();
}

bool PurgeableVMObject::ask_purged_access(void* page) const
{
    return on_purged_access_(page);
}

} // namespace faultline::memory
