#include "memory/objects/inode_vm_object.h"

#include "memory/objects/fault_around.h"

#include <algorithm>
#include <cerrno>

namespace faultline::memory {

InodeVMObject::InodeVMObject(boost::intrusive_ptr<FileCache> cache, PageStates placeholder) noexcept
    : VMObject(FileCache::kMaxPages * cache->page_size(), cache->page_size(), std::move(placeholder))
    , cache_(std::move(cache))
    , continue_wp_(cache_->options().continue_wp)
{
}

Outcome InodeVMObject::handle_fault(const FaultContext& ctx, PageSink& sink) noexcept
{
    if (ctx.kind == uffd::FaultKind::WriteProtect)
        return VMObject::handle_fault(ctx, sink);
    const size_t page = ctx.object_page();
    const size_t ps = ctx.page_size;
    const uint64_t size = cache_->file_size();
    if (uint64_t(page) * ps >= size)
        return Outcome::sigbus();
    PageStates& states = cache_->states();
    // A minor fault on a page the cache never read: the memfd has a page
    // the runtime did not put there (a fork child's copy of a shared region
    // touched it, and the kernel filled it with zeros). It is read from the
    // file like an absent page: never zeros where the file has data.
    // A missing fault on a page the cache holds is a fault raised before
    // the page arrived and read after: map it (or, in copy mode, let the
    // kernel map it). Only the cache itself removes pages from the memfd,
    // and it marks them Unpopulated when it does.
    // The readahead window: the region's limits, grown by a stream of
    // faults as fault-around grows for anonymous memory, held to the file.
    const size_t end_page = size_t((size + ps - 1) / ps);
    const size_t ceiling = std::min(ctx.end_object_page(), end_page);
    const Window window = choose_fault_around_window(states, page, ctx.first_object_page(), ceiling, ctx.around);
    switch (cache_->fetch(page, window.first, window.count, ctx.token, ctx.completions, ctx.io)) {
    case FileCache::Fetch::Present:
        return map_cached(ctx, sink);
    case FileCache::Fetch::Pending:
        return Outcome::pending();
    case FileCache::Fetch::Retry:
        return { Resolution::Retry };
    case FileCache::Fetch::PastEnd:
        return Outcome::sigbus();
    }
    return Outcome::sigbus();
}

Outcome InodeVMObject::resume_fault(const FaultContext& ctx, PageSink& sink, int64_t result) noexcept
{
    // The budget had no room and now has (memory/page_budget.h): fault
    // again.
    if (result == -EAGAIN)
        return { Resolution::Retry };
    if (result < 0)
        return Outcome::sigbus();
    if (!cache_->options().zero_copy) {
        // Copy mode: the page is in the memfd; the kernel maps it when the
        // thread retries (the region is registered for missing pages only).
        Outcome outcome = Outcome::installed(FillKind::Backing, 0);
        outcome.around_later = true;
        return outcome;
    }
    if (cache_->states().get(ctx.object_page()) != PageState::Present)
        return { Resolution::Retry };
    Outcome outcome = map_cached(ctx, sink);
    // A fault that had to wait for the file may be a stream's: look ahead
    // once its thread is woken.
    outcome.around_later = outcome.resolution == Resolution::Installed;
    return outcome;
}

Outcome InodeVMObject::fault_around(const FaultContext& ctx, PageSink&) noexcept
{
    // Only a stream reads ahead: the pages below the faulting one (within
    // the readahead limits) were read already.
    const size_t page = ctx.object_page();
    const PageStates& states = cache_->states();
    const size_t min = std::max<size_t>(1, ctx.around.min_pages);
    const size_t max = std::max(min, size_t(ctx.around.max_pages));
    if (max <= min || states.populated_run_below(page, ctx.first_object_page(), max) < min)
        return Outcome::installed(FillKind::Zero, 0);
    // The first page past the run of cached pages from this one is where the
    // stream faults next; read the window it would get there.
    size_t next = page;
    while (next < ctx.end_object_page() && next - page < max && states.get(next) != PageState::Unpopulated)
        ++next;
    if (next >= ctx.end_object_page() || states.get(next) != PageState::Unpopulated)
        return Outcome::installed(FillKind::Zero, 0);
    const size_t run = states.populated_run_below(next, ctx.first_object_page(), max);
    const size_t count = std::min(max, std::max(min, 2 * run));
    (void)cache_->fetch_ahead(next, std::min(count, ctx.end_object_page() - next), ctx.io);
    return Outcome::installed(FillKind::Zero, 0);
}

Outcome InodeVMObject::map_cached(const FaultContext& ctx, PageSink& sink) noexcept
{
    const size_t page = ctx.object_page();
    if (!cache_->options().zero_copy)
        return Outcome::installed(FillKind::Backing, 0);
    // The run of whole cached pages from the faulting page, within the
    // region and the readahead window: one UFFDIO_CONTINUE maps them all.
    const PageStates& states = cache_->states();
    const size_t limit = std::max<size_t>(1, ctx.around.max_pages);
    // Under a budget, every page mapped is pinned until it is mapped (and
    // marked dirty where this fault writes it): the evictor never drops a
    // page between our look at it and the thread's use of it
    // (memory/objects/eviction_list.h). A page being dropped is not mapped;
    // the thread faults again and reads it anew.
    EvictionList* list = cache_->eviction();
    if (list && !list->pin(page))
        return { Resolution::Retry };
    size_t end = page + 1;
    while (end < ctx.end_object_page() && end - page < limit && states.get(end) == PageState::Present
        && (!list || list->pin(end)))
        ++end;
    struct Unpin {
        EvictionList* list;
        size_t first, end;
        ~Unpin()
        {
            if (list)
                for (size_t i = first; i < end; ++i)
                    list->unpin(i);
        }
    } unpin { list, page, end };
    const bool protect = protect_installed();
    bool wp = protect && continue_wp_.load(std::memory_order_relaxed);
    uffd::FillResult r = sink.map_cached(ctx.page, (end - page) * ctx.page_size, wp);
    if (!r.ok() && wp && r.error == EINVAL) {
        // No UFFDIO_CONTINUE_MODE_WP (before 6.4): map writable and count
        // the pages dirty, so that a sync writes them (never loses them).
        continue_wp_.store(false, std::memory_order_seq_cst);
        wp = false;
        r = sink.map_cached(ctx.page, (end - page) * ctx.page_size, false);
    }
    if (!r.ok()) {
        // The run failed; the faulting page alone decides.
        end = page + 1;
        r = sink.map_cached(ctx.page, ctx.page_size, wp);
        if (!r.ok())
            return Outcome::from_failure(r);
    }
    // Mapped writable: where a view can write, the pages count dirty at
    // once. Where none can (yet), they stay clean — a sync must not write
    // the cache's old bytes over the file's newer ones — and the first view
    // made writable marks every cached page
    // (SharedInodeVMObject::note_writable).
    if (protect && !wp && writable_views())
        for (size_t i = page; i < end; ++i)
            cache_->mark_dirty(i);
    if (wp && ctx.write && !async_write_tracking()) {
        // A write fault where writes are tracked with faults: the page is
        // dirty the moment the thread retries, so lift its protection now —
        // left on, the retried write would raise a write-protect fault, a
        // second round trip for the same page. (Asynchronous tracking needs
        // no round trip: the kernel lifts the protection itself.) Lift, then mark (the order a racing
        // sync needs: SharedInodeVMObject::handle_fault). Should the thread
        // retry before the lift, it takes that write-protect fault instead.
        if (sink.write_protect(ctx.page, ctx.page_size, false).ok())
            cache_->mark_dirty(page);
    }
    cache_->note_mapped(page, end - page);
    return Outcome::installed(FillKind::Backing, r.pages, ctx.address_of(page), ctx.address_of(end));
}

} // namespace faultline::memory
