#include "memory/objects/anonymous_vm_object.h"
#include "support/try.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <sys/mman.h>
#include <unistd.h>

namespace faultline::memory {

Result<boost::intrusive_ptr<AnonymousVMObject>> AnonymousVMObject::try_create_with_size(size_t size, size_t page_size)
{
    if (size == 0 || size % page_size != 0)
        return fail(EINVAL, "object size must be a non-zero multiple of the page size");
    auto states = PageStates::create(size / page_size);
    if (!states)
        return std::unexpected(states.error());
    auto* object = new (std::nothrow) AnonymousVMObject(size, page_size, std::move(*states), -1);
    if (!object)
        return fail(ENOMEM, "out of memory for VMObject");
    return boost::intrusive_ptr<AnonymousVMObject>(object);
}

Result<boost::intrusive_ptr<AnonymousVMObject>> AnonymousVMObject::try_create_shared_with_size(size_t size, size_t page_size, const char* name)
{
    if (size == 0 || size % page_size != 0)
        return fail(EINVAL, "object size must be a non-zero multiple of the page size");
    auto states = PageStates::create(size / page_size);
    if (!states)
        return std::unexpected(states.error());
    int fd = TRY(create_memfd(size, name && *name ? name : "faultline-shared"));
    auto* object = new (std::nothrow) AnonymousVMObject(size, page_size, std::move(*states), fd);
    if (!object) {
        close(fd);
        return fail(ENOMEM, "out of memory for VMObject");
    }
    return boost::intrusive_ptr<AnonymousVMObject>(object);
}

Result<int> AnonymousVMObject::create_memfd(size_t size, const char* name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return failf(errno, "memfd_create failed: %s", strerror(errno));
    if (ftruncate(fd, off_t(size)) != 0) {
        int err = errno;
        close(fd);
        return failf(err, "sizing the object's memfd failed: %s", strerror(err));
    }
    return fd;
}

AnonymousVMObject::~AnonymousVMObject()
{
    if (memfd_ >= 0)
        close(memfd_);
}

void AnonymousVMObject::release_pages(size_t first, size_t count) noexcept
{
    // Forgotten before they go (as RuntimeCore::discard does): a page
    // refilled in between is then recorded, never there but unrecorded.
    forget_pages(first, count);
    if (memfd_ >= 0)
        (void)fallocate(memfd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(first * page_size()), off_t(count * page_size()));
}

Outcome AnonymousVMObject::handle_fault(const FaultContext& ctx, PageSink& sink) noexcept
{
    if (ctx.kind != uffd::FaultKind::Missing)
        return VMObject::handle_fault(ctx, sink);
    const size_t page = ctx.object_page();
    // Another handler thread is filling this page as part of its window: it
    // wakes the window's waiters once the page is in (PageStates::claim).
    if (states_.filling(page))
        return Outcome::in_flight();
    const Window window = choose_fault_around_window(states_, page, ctx.first_object_page(), ctx.end_object_page(), ctx.around);
    // A stream touches its window next: it waits for it, and the window
    // after it is filled ahead once the thread is woken. An isolated
    // fault's thread goes elsewhere: it is woken once its page is in, and
    // its window is filled while it runs (docs/performance.md measured each
    // way; WakeOrder forces one).
    const bool later = ctx.wake_order == WakeOrder::BeforeWindow || (ctx.wake_order == WakeOrder::Adaptive && !window.stream);
    if (!later || window.count == 1) {
        Outcome outcome = fill(ctx, sink, window, false);
        outcome.around_later = outcome.resolution == Resolution::Installed && window.stream && ctx.wake_order == WakeOrder::Adaptive;
        return outcome;
    }
    Outcome outcome = fill(ctx, sink, Window { page, 1 }, false);
    outcome.around_later = outcome.resolution == Resolution::Installed;
    return outcome;
}

Outcome AnonymousVMObject::fault_around(const FaultContext& ctx, PageSink& sink) noexcept
{
    const size_t page = ctx.object_page();
    const size_t floor = ctx.first_object_page(), ceiling = ctx.end_object_page();
    const Window window = choose_fault_around_window(states_, page, floor, ceiling, ctx.around);
    bool complete = true;
    for (size_t i = window.first; i < window.end() && complete; ++i)
        complete = states_.populated(i);
    if (!complete)
        return fill(ctx, sink, window, true); // the window an isolated fault left for now
    if (!window.stream)
        return Outcome::installed(FillKind::Zero, 0);
    // Readahead for a stream whose window is in: the window it will fault
    // into next — at the first unpopulated page past this one, within one
    // window's reach — chosen as if it had faulted there, and filled while
    // it works through what is in. Called again, it reaches one window
    // further.
    const bool up = window.first == page;
    const size_t reach = ctx.around.max_pages;
    size_t next = up ? window.end() : window.first;
    for (size_t step = 0; step < reach; ++step) {
        if (up ? next >= ceiling : next <= floor)
            return Outcome::installed(FillKind::Zero, 0);
        if (!up)
            --next;
        if (!states_.populated(next))
            break;
        if (up)
            ++next;
    }
    if ((up && next >= ceiling) || states_.populated(next))
        return Outcome::installed(FillKind::Zero, 0);
    const Window ahead = choose_fault_around_window(states_, next, floor, ceiling, ctx.around);
    if (!ahead.stream)
        return Outcome::installed(FillKind::Zero, 0);
    return fill(ctx, sink, ahead, true);
}

Outcome AnonymousVMObject::fill_window(const FaultContext& ctx, PageSink& sink, Window window, bool skip_fault_page) noexcept
{
    // A read maps the shared zero page, a write a private zeroed page: the
    // whole window follows the faulting access, as a stream of reads or of
    // writes usually continues the same way.
    const bool private_pages = ctx.write || always_private_;
    const uffd::ZeroFill how = private_pages ? uffd::ZeroFill::Private : uffd::ZeroFill::SharedZeroPage;
    const PageState installed_as = private_pages ? PageState::Present : PageState::ZeroMapped;
    const size_t page = ctx.object_page();
    // Pages are claimed run by run (Unpopulated -> Filling), so that two
    // handler threads never fill the same page and a fault on a claimed page
    // is left to its claimer. The faulting page is filled whatever its state
    // says: the state is a hint, and the kernel has just said it is missing.
    auto take = [&](size_t i) {
        if (i == page && !skip_fault_page) {
            (void)states_.claim(i);
            return true;
        }
        return i != page && (!filtered_ || may_fill_around(i)) && states_.claim(i);
    };

    Outcome outcome = Outcome::installed(FillKind::Zero, 0);
    // Every claimed page is settled before this returns, and the whole
    // window is woken by the caller: a thread whose fault found one of them
    // Filling is among those woken, whatever became of the fill.
    outcome.wake_lo = ctx.address_of(window.first);
    outcome.wake_hi = ctx.address_of(window.end());
    for (size_t at = window.first; at < window.end();) {
        if (!take(at)) {
            ++at;
            continue;
        }
        size_t run_end = at + 1;
        while (run_end < window.end() && take(run_end))
            ++run_end;
        uffd::FillResult r = sink.zero(ctx.address_of(at), (run_end - at) * ctx.page_size, how);
        outcome.pages += uint32_t(r.pages);
        const bool has_fault_page = !skip_fault_page && at <= page && page < run_end;
        states_.settle(at, run_end - at, r.ok() ? installed_as : PageState::Unpopulated);
        if (!r.ok() && has_fault_page) {
            // The page a thread waits for could not be placed: that decides
            // the answer. Failures elsewhere in the window are nobody's
            // concern: those pages fault on their own later.
            Outcome failed = Outcome::from_failure(r);
            failed.pages = outcome.pages;
            failed.wake_lo = outcome.wake_lo;
            failed.wake_hi = ctx.address_of(run_end);
            return failed;
        }
        at = run_end;
    }
    return outcome;
}

} // namespace faultline::memory
