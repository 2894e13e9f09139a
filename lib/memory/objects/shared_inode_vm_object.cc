#include "memory/objects/shared_inode_vm_object.h"

#include <new>

namespace faultline::memory {

Result<boost::intrusive_ptr<SharedInodeVMObject>> SharedInodeVMObject::try_create(boost::intrusive_ptr<FileCache> cache)
{
    auto placeholder = PageStates::create(1);
    if (!placeholder)
        return std::unexpected(placeholder.error());
    auto* object = new (std::nothrow) SharedInodeVMObject(std::move(cache), std::move(*placeholder));
    if (!object)
        return fail(ENOMEM, "out of memory for a file object");
    return boost::intrusive_ptr<SharedInodeVMObject>(object);
}

void SharedInodeVMObject::note_writable() noexcept
{
    if (ever_writable_.exchange(true, std::memory_order_seq_cst))
        return;
    if (!tracks_writes() || continue_wp_.load(std::memory_order_seq_cst))
        return;
    // A page mapped before now (map_cached saw no writable view and left it
    // clean) is Present already: marked here. One mapped after sees the
    // flag and marks itself.
    const PageStates& states = cache_->states();
    states.for_each_marked_span(0, FileCache::kMaxPages, [&](size_t at, size_t n) {
        for (size_t i = at; i < at + n; ++i)
            if (states.get(i) == PageState::Present)
                cache_->mark_dirty(i);
    });
}

uffd::Mode SharedInodeVMObject::uffd_modes() const noexcept
{
    if (!cache_->options().zero_copy)
        return uffd::Mode::Missing;
    uffd::Mode modes = uffd::Mode::Missing | uffd::Mode::Minor;
    if (tracks_writes())
        modes = modes | uffd::Mode::WriteProtect;
    return modes;
}

Outcome SharedInodeVMObject::handle_fault(const FaultContext& ctx, PageSink& sink) noexcept
{
    if (ctx.kind == uffd::FaultKind::WriteProtect) {
        // The first write since the page was mapped or synced: lift the
        // protection so the write goes through, *then* mark the page dirty.
        // A sync clears the mark and then protects; in the other order a
        // sync between our mark and our lift would leave the page writable
        // and clean, and every later write to it would be lost.
        // Under a budget the page is pinned from before the lift to after
        // the mark, so that the evictor, which re-protects a page and then
        // writes it back before dropping it, sees this write (the mark) or
        // gives the page up (the pin) — never drops it with the write
        // unrecorded. A page already being dropped is not unprotected: the
        // thread faults again on the page read anew.
        EvictionList* list = cache_->eviction();
        if (list && !list->pin(ctx.object_page()))
            return { Resolution::Retry };
        if (list && cache_->states().get(ctx.object_page()) != PageState::Present) {
            // A fault raised before the evictor dropped the page: there is
            // nothing to unprotect or to mark (a dirty mark here would make a
            // sync write the hole). The thread faults again and reads it.
            list->unpin(ctx.object_page());
            return { Resolution::Retry };
        }
        uffd::FillResult r = sink.write_protect(ctx.page, ctx.page_size, false);
        cache_->mark_dirty(ctx.object_page());
        if (list)
            list->unpin(ctx.object_page());
        if (!r.ok())
            return Outcome::from_failure(r);
        return Outcome::installed(FillKind::WriteProtect, 0);
    }
    return InodeVMObject::handle_fault(ctx, sink);
}

} // namespace faultline::memory
