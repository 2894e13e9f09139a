#include "memory/objects/swap_backed_vm_object.h"

#include "memory/lazy_table.h"

#include <algorithm>
#include <cerrno>
#include <new>
#include <sched.h>
#include <sys/mman.h>

namespace faultline::memory {

Result<boost::intrusive_ptr<SwapBackedVMObject>> SwapBackedVMObject::try_create(size_t size, size_t page_size,
    std::shared_ptr<SwapSpace> space)
{
    if (size == 0 || size % page_size != 0)
        return fail(EINVAL, "object size must be a non-zero multiple of the page size");
    const size_t pages = size / page_size;
    if (pages >= UINT32_MAX)
        return fail(EINVAL, "a swap-backed object holds at most 2^32-1 pages");
    auto states = PageStates::create(pages);
    if (!states)
        return std::unexpected(states.error());
    auto list = EvictionList::create(pages);
    if (!list)
        return std::unexpected(list.error());
    // Both tables and the bounce pages are NORESERVE: a page of a table
    // costs memory only once a page it describes has been touched.
    const size_t table_bytes = (pages * sizeof(uint32_t) + page_size - 1) / page_size * page_size;
    auto* words = map_lazy_table<std::atomic<uint32_t>>(table_bytes);
    auto* slots = map_lazy_table<std::atomic<uint32_t>>(table_bytes);
    auto* bounce = map_lazy_table<char>(kReadSlots * page_size);
    auto* object = words && slots && bounce
        ? new (std::nothrow) SwapBackedVMObject(size, page_size, std::move(*states), std::move(space), std::move(*list),
              words, slots, bounce, table_bytes)
        : nullptr;
    if (!object) {
        unmap_lazy_table(words, table_bytes);
        unmap_lazy_table(slots, table_bytes);
        unmap_lazy_table(bounce, kReadSlots * page_size);
        return fail(ENOMEM, "out of memory for a swap-backed object");
    }
    return boost::intrusive_ptr<SwapBackedVMObject>(object);
}

SwapBackedVMObject::SwapBackedVMObject(size_t size, size_t page_size, PageStates states, std::shared_ptr<SwapSpace> space,
    std::unique_ptr<EvictionList> list, std::atomic<uint32_t>* words, std::atomic<uint32_t>* slot_table, char* bounce,
    size_t table_bytes) noexcept
    : AnonymousVMObject(size, page_size, std::move(states), -1)
    , space_(std::move(space))
    , list_(std::move(list))
    , words_(words)
    , slot_table_(slot_table)
    , bounce_(bounce)
    , table_bytes_(table_bytes)
{
    always_private_ = true;
    for (size_t i = 0; i < kReadSlots; ++i) {
        reads_[i].op.complete = &SwapBackedVMObject::read_done;
        reads_[i].object = this;
        reads_[i].bounce = bounce_ + i * page_size;
    }
}

SwapBackedVMObject::~SwapBackedVMObject()
{
    // No region views the object any more and no I/O is in flight (unmap
    // and destruction wait for pending faults): give back every slot and
    // every charge it still holds.
    states_.for_each_marked_span(0, page_count(), [&](size_t first, size_t count) {
        for (size_t p = first; p < first + count; ++p) {
            free_slot(p);
            (void)uncharge_page(p);
        }
    });
    flush_deferred();
    unmap_lazy_table(words_, table_bytes_);
    unmap_lazy_table(slot_table_, table_bytes_);
    unmap_lazy_table(bounce_, kReadSlots * page_size());
}

// --- per-page word -------------------------------------------------------

bool SwapBackedVMObject::move(size_t page, SwapState from, SwapState to) noexcept
{
    uint32_t w = words_[page].load(std::memory_order_acquire);
    do {
        if (state_of(w) != from)
            return false;
    } while (!words_[page].compare_exchange_weak(w, with_state(w, to), std::memory_order_acq_rel));
    return true;
}

bool SwapBackedVMObject::pin(size_t page) noexcept
{
    uint32_t w = words_[page].load(std::memory_order_acquire);
    uint32_t next;
    do {
        if (state_of(w) == SwapState::Dropping)
            return false;
        next = w + kPinUnit;
        // A pin is a write about to be let through: a page being written
        // out must not be dropped with the write lost.
        if (state_of(w) == SwapState::Evicting)
            next |= kCancelled;
    } while (!words_[page].compare_exchange_weak(w, next, std::memory_order_acq_rel));
    return true;
}

void SwapBackedVMObject::free_slot(size_t page) noexcept
{
    const uint32_t held = slot_table_[page].exchange(0, std::memory_order_acq_rel);
    if (held == 0)
        return;
    // Before the slot is free: once it is, the evictor may reuse it, and the
    // target must see the release ahead of the new write.
    space_->target->release(held - 1);
    space_->slots->free(held - 1);
    counters_.slots_reclaimed.fetch_add(1, std::memory_order_relaxed);
    // A slot is free again: the evictor may try the target once more.
    space_->full.store(false, std::memory_order_relaxed);
}

bool SwapBackedVMObject::set_charged(size_t page) noexcept
{
    if (words_[page].fetch_or(kCharged, std::memory_order_acq_rel) & kCharged)
        return false;
    resident_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

bool SwapBackedVMObject::clear_charge(size_t page) noexcept
{
    if (!(words_[page].fetch_and(~kCharged, std::memory_order_acq_rel) & kCharged))
        return false;
    resident_.fetch_sub(1, std::memory_order_relaxed);
    return true;
}

bool SwapBackedVMObject::uncharge_page(size_t page) noexcept
{
    if (!clear_charge(page))
        return false;
    space_->budget->uncharge(1);
    return true;
}

// --- fault path ----------------------------------------------------------

Outcome SwapBackedVMObject::handle_fault(const FaultContext& ctx, PageSink& sink) noexcept
{
    switch (ctx.kind) {
    case uffd::FaultKind::Missing:
        return fault_missing(ctx, sink);
    case uffd::FaultKind::WriteProtect:
        return fault_write_protect(ctx, sink);
    case uffd::FaultKind::Minor:
        break;
    }
    return VMObject::handle_fault(ctx, sink);
}

Outcome SwapBackedVMObject::fault_missing(const FaultContext& ctx, PageSink& sink) noexcept
{
    const size_t page = ctx.object_page();
    switch (swap_state(page)) {
    case SwapState::Swapped:
    case SwapState::SwapIn:
        return swap_in(ctx, page);
    case SwapState::Dropping:
        // The evictor is dropping it this instant: once it is gone the
        // thread faults again and reads it back.
        return { Resolution::Retry };
    case SwapState::Cached:
    case SwapState::Evicting:
        // The page is mapped — this fault was raised before it was
        // installed and read after (the fill answers EEXIST) — or somebody
        // dropped it behind the runtime's back, and it must read zeros like
        // any anonymous page dropped with MADV_DONTNEED. Either way the
        // copy in its slot is no longer the page: a pin cancels an
        // eviction, and a clean copy is let go.
        if (pin(page)) {
            if (move(page, SwapState::Cached, SwapState::None))
                free_slot(page);
            unpin(page);
        }
        // Still charged to the budget: the page is filled again with no new
        // charge, so this fault never waits for room. It must not: the
        // evictor's own write of the page reads it, and such a read faults
        // here when the page went missing under it — a wait for room would
        // wait for the evictor, which waits for that write (the stress
        // test's budget phase stopped the whole fault service so).
        if (words_[page].load(std::memory_order_acquire) & kCharged)
            return fill_window(ctx, sink, Window { page, 1 }, false);
        break;
    case SwapState::None:
        break;
    }
    return AnonymousVMObject::handle_fault(ctx, sink);
}

Outcome SwapBackedVMObject::fault_write_protect(const FaultContext& ctx, PageSink& sink) noexcept
{
    const size_t page = ctx.object_page();
    // Pinned from before the protection is lifted until after: the evictor
    // neither starts nor completes an eviction of the page meanwhile.
    if (!pin(page))
        return { Resolution::Retry };
    // A clean page swapped in is written: its slot no longer holds it.
    if (move(page, SwapState::Cached, SwapState::None))
        free_slot(page);
    // A write is a use: the page gets a second chance under Clock.
    if (list_->listed(page))
        list_->set_referenced(page);
    uffd::FillResult r = sink.write_protect(ctx.page, ctx.page_size, false);
    unpin(page);
    if (!r.ok())
        return Outcome::from_failure(r);
    return Outcome::installed(FillKind::WriteProtect, 0);
}

Outcome SwapBackedVMObject::fill(const FaultContext& ctx, PageSink& sink, Window window, bool skip_fault_page) noexcept
{
    return fill_charged(ctx, sink, window, skip_fault_page);
}

Outcome SwapBackedVMObject::fill_charged(const FaultContext& ctx, PageSink& sink, Window window, bool skip_fault_page) noexcept
{
    PageBudget& budget = *space_->budget;
    const size_t page = ctx.object_page();
    size_t got = budget.charge(window.count, 1);
    if (got == 0) {
        if (skip_fault_page)
            return Outcome::installed(FillKind::Zero, 0); // no room to fill ahead: nobody waits for it
        // No room: the fault waits (its token is posted once the evictor
        // has made room, and the fault is taken again).
        if (ctx.token.valid() && budget.park(ctx.token, ctx.completions))
            return Outcome::pending();
        return { Resolution::Retry };
    }
    if (got < window.count) {
        if (skip_fault_page) {
            budget.uncharge(got);
            return Outcome::installed(FillKind::Zero, 0);
        }
        // Room for part of the window: the part that holds the fault.
        const size_t first = std::max(window.first, std::min(page, window.end() - got));
        window = Window { first, got, window.stream };
    }
    Outcome outcome = fill_window(ctx, sink, window, skip_fault_page);
    account_filled(window.first, window.end(), got);
    return outcome;
}

void SwapBackedVMObject::account_filled(size_t first, size_t end, size_t charged) noexcept
{
    size_t fresh = 0;
    for (size_t p = first; p < end; ++p) {
        if (states_.get(p) != PageState::Present || swap_state(p) != SwapState::None)
            continue;
        if (set_charged(p)) {
            ++fresh;
            if (!list_->listed(p))
                list_->push_back(p);
        }
    }
    if (fresh < charged)
        give_back(charged - fresh);
    else if (fresh > charged)
        (void)space_->budget->charge(fresh - charged, 0);
}

void SwapBackedVMObject::give_back(size_t pages) noexcept
{
    // A page this fill placed is not counted as fresh when a release forgot
    // it between the fill and now — and that release has yet to drop it
    // (RuntimeCore::discard: forget, madvise, uncharge). Were its charge
    // given back here, the page would stay mapped uncharged until the
    // madvise, and a fill elsewhere could take its room: resident memory a
    // page above the budget's hard mark (the heap budget test saw it once).
    // So while a release is under way the charge waits for it. The fence
    // pairs with the release's: a fill that saw the page forgotten sees the
    // release counted.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (releasing_.load(std::memory_order_seq_cst) == 0) {
        space_->budget->uncharge(pages);
        return;
    }
    deferred_uncharge_.fetch_add(pages, std::memory_order_seq_cst);
    // The release may have ended between the two: then nobody else flushes.
    if (releasing_.load(std::memory_order_seq_cst) == 0)
        flush_deferred();
}

void SwapBackedVMObject::flush_deferred() noexcept
{
    if (const size_t pages = deferred_uncharge_.exchange(0, std::memory_order_seq_cst))
        space_->budget->uncharge(pages);
}

SwapBackedVMObject::ReadSlot* SwapBackedVMObject::read_slot_of(size_t page) noexcept
{
    for (auto& slot : reads_)
        if (slot.busy && slot.page == page)
            return &slot;
    return nullptr;
}

Outcome SwapBackedVMObject::swap_in(const FaultContext& ctx, size_t page) noexcept
{
    if (!ctx.io)
        return Outcome::sigbus(); // no I/O at all: the page cannot be had (never the case with a fault service)
    if (!ctx.token.valid())
        return { Resolution::Retry };
    ReadSlot* slot = nullptr;
    {
        std::lock_guard g(reads_lock_);
        if (swap_state(page) == SwapState::SwapIn) {
            // Join the read in flight: concurrent faults on one page cause
            // one read.
            ReadSlot* reading = read_slot_of(page);
            if (!reading || reading->done || reading->waiters == kMaxWaiters)
                return { Resolution::Retry };
            reading->tokens[reading->waiters] = ctx.token;
            reading->ports[reading->waiters] = ctx.completions;
            ++reading->waiters;
            return Outcome::pending();
        }
        if (swap_state(page) != SwapState::Swapped)
            return { Resolution::Retry }; // it moved meanwhile: the next fault sees where
        for (auto& s : reads_)
            if (!s.busy) {
                slot = &s;
                break;
            }
        if (!slot)
            return { Resolution::Retry };
        if (space_->budget->charge(1, 1) == 0) {
            if (space_->budget->park(ctx.token, ctx.completions))
                return Outcome::pending();
            return { Resolution::Retry };
        }
        if (!move(page, SwapState::Swapped, SwapState::SwapIn)) {
            space_->budget->uncharge(1);
            return { Resolution::Retry };
        }
        if (!set_charged(page))
            space_->budget->uncharge(1);
        slot->busy = true;
        slot->page = page;
        slot->swap_slot = slot_table_[page].load(std::memory_order_acquire) - 1;
        slot->result = 0;
        slot->done = slot->settled = slot->installing = slot->failed = false;
        slot->waiters = 1;
        slot->resumes_left = 0;
        slot->tokens[0] = ctx.token;
        slot->ports[0] = ctx.completions;
    }
    // Queued outside the lock: the read may complete before read() returns.
    if (!space_->target->read(slot->swap_slot, slot->bounce, &slot->op, ctx.io)) {
        std::lock_guard g(reads_lock_);
        (void)move(page, SwapState::SwapIn, SwapState::Swapped);
        (void)uncharge_page(page);
        slot->busy = false;
        return { Resolution::Retry };
    }
    return Outcome::pending();
}

void SwapBackedVMObject::read_done(io::Operation* op, int32_t result) noexcept
{
    auto& slot = *reinterpret_cast<ReadSlot*>(op);
    SwapBackedVMObject& self = *slot.object;
    PendingToken tokens[kMaxWaiters];
    CompletionPort* ports[kMaxWaiters];
    size_t n;
    {
        std::lock_guard g(self.reads_lock_);
        slot.done = true;
        slot.result = result;
        n = slot.waiters;
        slot.resumes_left = n;
        std::copy(slot.tokens, slot.tokens + n, tokens);
        std::copy(slot.ports, slot.ports + n, ports);
    }
    for (size_t i = 0; i < n; ++i)
        ports[i]->post(tokens[i], result);
}

void SwapBackedVMObject::release_read_slot(ReadSlot& slot) noexcept
{
    if (slot.settled && slot.resumes_left == 0)
        slot.busy = false;
}

Outcome SwapBackedVMObject::resume_fault(const FaultContext& ctx, PageSink& sink, int64_t result) noexcept
{
    const size_t page = ctx.object_page();
    std::unique_lock g(reads_lock_);
    ReadSlot* slot = read_slot_of(page);
    if (!slot || !slot->done) {
        // Not a read: the budget had no room and now has (PageBudget::park).
        return { Resolution::Retry };
    }
    auto finish = [&](Outcome outcome) {
        --slot->resumes_left;
        release_read_slot(*slot);
        return outcome;
    };
    const Outcome wake_page = Outcome::installed(FillKind::Backing, 0, ctx.page, ctx.page + ctx.page_size);
    if (slot->settled)
        return finish(slot->failed ? Outcome::sigbus() : wake_page);
    if (slot->installing)
        return finish({ Resolution::Retry }); // the installer wakes nobody else; this thread faults again
    if (result != int64_t(ctx.page_size)) {
        // The swap target failed (or returned less than a page): SIGBUS for
        // every thread that waits for the page, never a page of zeros. The
        // page stays swapped: its slot still holds what the target has.
        (void)move(page, SwapState::SwapIn, SwapState::Swapped);
        (void)uncharge_page(page);
        counters_.read_errors.fetch_add(1, std::memory_order_relaxed);
        slot->settled = slot->failed = true;
        return finish(Outcome::sigbus());
    }
    slot->installing = true;
    g.unlock();
    // A thread that writes the page gets it writable (its slot is let go);
    // one that reads gets it write-protected, so that the slot stays a
    // valid copy until the first write (a clean page evicts for free).
    const bool keep_slot = !ctx.write;
    uffd::FillResult r = sink.copy(ctx.page, slot->bounce, ctx.page_size, keep_slot);
    g.lock();
    slot->installing = false;
    slot->settled = true;
    if (!r.ok()) {
        // The region went away or the process is exiting: the page stays
        // swapped for whoever finds it next.
        (void)move(page, SwapState::SwapIn, SwapState::Swapped);
        (void)uncharge_page(page);
        slot->failed = r.status == uffd::FillStatus::Failed;
        return finish(Outcome::from_failure(r));
    }
    if (keep_slot) {
        (void)move(page, SwapState::SwapIn, SwapState::Cached);
    } else {
        (void)move(page, SwapState::SwapIn, SwapState::None);
        free_slot(page);
    }
    swapped_.fetch_sub(1, std::memory_order_relaxed);
    counters_.swapped_in.fetch_add(1, std::memory_order_relaxed);
    if (!list_->listed(page))
        list_->push_back(page);
    // It was wanted again after it was judged cold: keep it a while.
    list_->set_referenced(page);
    return finish(Outcome::installed(FillKind::Backing, 1, ctx.page, ctx.page + ctx.page_size));
}

// --- release -------------------------------------------------------------

void SwapBackedVMObject::release_pages(size_t first, size_t count) noexcept
{
    uncharge_released(release_keeping_charge(first, count));
}

size_t SwapBackedVMObject::release_keeping_charge(size_t first, size_t count) noexcept
{
    // Counted before any page is forgotten (give_back()).
    releasing_.fetch_add(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    size_t charged = 0;
    states_.for_each_marked_span(first, count, [&](size_t lo, size_t n) {
        for (size_t p = lo; p < lo + n; ++p) {
            for (;;) {
                uint32_t w = words_[p].load(std::memory_order_acquire);
                const SwapState s = state_of(w);
                if (s == SwapState::Evicting || s == SwapState::Dropping || s == SwapState::SwapIn) {
                    // I/O on this page is finishing (the evictor's write and
                    // drop, a handler's read and install): wait for it, so
                    // that nothing lands after the release. Never cancel an
                    // eviction and drop the page under its write: the
                    // write would fault on the missing page, and that fault
                    // could wait for room only the evictor — stuck in the
                    // write — makes.
                    sched_yield();
                    continue;
                }
                if (s == SwapState::Cached || s == SwapState::Swapped) {
                    if (!words_[p].compare_exchange_weak(w, with_state(w, SwapState::None), std::memory_order_acq_rel))
                        continue;
                    if (s == SwapState::Swapped)
                        swapped_.fetch_sub(1, std::memory_order_relaxed);
                    free_slot(p);
                }
                break;
            }
            charged += clear_charge(p);
            if (list_->listed(p))
                list_->remove(p);
        }
    });
    forget_pages(first, count);
    return charged;
}

void SwapBackedVMObject::uncharge_released(size_t pages) noexcept
{
    space_->budget->uncharge(pages);
    if (releasing_.fetch_sub(1, std::memory_order_seq_cst) == 1)
        flush_deferred();
}

// --- evictor -------------------------------------------------------------

bool SwapBackedVMObject::begin_evict(size_t page, SwapState& was) noexcept
{
    uint32_t w = words_[page].load(std::memory_order_acquire);
    do {
        const SwapState s = state_of(w);
        if ((s != SwapState::None && s != SwapState::Cached) || (w & kPinMask) || !(w & kCharged))
            return false;
        was = s;
    } while (!words_[page].compare_exchange_weak(w, with_state(w, SwapState::Evicting), std::memory_order_acq_rel));
    return true;
}

bool SwapBackedVMObject::assign_slot(size_t page) noexcept
{
    const uint32_t slot = space_->slots->allocate();
    if (slot == SwapSlots::kNone)
        return false;
    slot_table_[page].store(slot + 1, std::memory_order_release);
    return true;
}

bool SwapBackedVMObject::commit_evict(size_t page) noexcept
{
    uint32_t w = words_[page].load(std::memory_order_acquire);
    do {
        if (state_of(w) != SwapState::Evicting || (w & (kCancelled | kPinMask))) {
            abort_evict(page);
            return false;
        }
    } while (!words_[page].compare_exchange_weak(w, with_state(w, SwapState::Dropping), std::memory_order_acq_rel));
    return true;
}

void SwapBackedVMObject::abort_evict(size_t page) noexcept
{
    // Whatever the slot holds is not the page any more (it was written, or
    // the write failed): it goes.
    (void)move(page, SwapState::Evicting, SwapState::None);
    free_slot(page);
}

void SwapBackedVMObject::finish_evict(size_t page) noexcept
{
    (void)move(page, SwapState::Dropping, SwapState::Swapped);
    (void)uncharge_page(page);
    swapped_.fetch_add(1, std::memory_order_relaxed);
    if (list_->listed(page))
        list_->remove(page);
    counters_.swapped_out.fetch_add(1, std::memory_order_relaxed);
}

} // namespace faultline::memory
