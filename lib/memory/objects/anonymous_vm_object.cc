#include "memory/objects/anonymous_vm_object.h"

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
    int fd = memfd_create(name && *name ? name : "faultline-shared", MFD_CLOEXEC);
    if (fd < 0)
        return failf(errno, "memfd_create failed: %s", strerror(errno));
    if (ftruncate(fd, off_t(size)) != 0) {
        int err = errno;
        close(fd);
        return failf(err, "sizing the shared object failed: %s", strerror(err));
    }
    auto* object = new (std::nothrow) AnonymousVMObject(size, page_size, std::move(*states), fd);
    if (!object) {
        close(fd);
        return fail(ENOMEM, "out of memory for VMObject");
    }
    return boost::intrusive_ptr<AnonymousVMObject>(object);
}

AnonymousVMObject::~AnonymousVMObject()
{
    if (memfd_ >= 0)
        close(memfd_);
}

void AnonymousVMObject::release_pages(size_t first, size_t count) noexcept
{
    if (memfd_ >= 0)
        (void)fallocate(memfd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(first * page_size()), off_t(count * page_size()));
    forget_pages(first, count);
}

Outcome AnonymousVMObject::handle_fault(const FaultContext& ctx, PageSink& sink) noexcept
{
    if (ctx.kind != uffd::FaultKind::Missing)
        return VMObject::handle_fault(ctx, sink);
    const size_t page = ctx.object_page();
    const Window window = choose_fault_around_window(states_, page, ctx.first_object_page(), ctx.end_object_page(), ctx.around);
    // A stream touches its window next: it waits for it. An isolated
    // fault's thread goes elsewhere: it is woken once its page is in, and
    // the window is filled while it runs (docs/performance.md measured
    // both ways; WakeOrder forces one).
    const bool later = ctx.wake_order == WakeOrder::BeforeWindow || (ctx.wake_order == WakeOrder::Adaptive && !window.stream);
    if (!later || window.count == 1)
        return fill_window(ctx, sink, window, false);
    Outcome outcome = fill_window(ctx, sink, Window { page, 1 }, false);
    outcome.around_later = outcome.resolution == Resolution::Installed;
    return outcome;
}

size_t AnonymousVMObject::fault_around(const FaultContext& ctx, PageSink& sink) noexcept
{
    const size_t page = ctx.object_page();
    Window window = choose_fault_around_window(states_, page, ctx.first_object_page(), ctx.end_object_page(), ctx.around);
    return fill_window(ctx, sink, window, true).pages;
}

Outcome AnonymousVMObject::fill_window(const FaultContext& ctx, PageSink& sink, Window window, bool skip_fault_page) noexcept
{
    // A read maps the shared zero page, a write a private zeroed page: the
    // whole window follows the faulting access, as a stream of reads or of
    // writes usually continues the same way.
    const uffd::ZeroFill how = ctx.write ? uffd::ZeroFill::Private : uffd::ZeroFill::SharedZeroPage;
    const PageState installed_as = ctx.write ? PageState::Present : PageState::ZeroMapped;
    const size_t page = ctx.object_page();
    // The faulting page is installed whatever its state says: the state is
    // a hint, and the kernel has just said the page is missing.
    auto wanted = [&](size_t i) { return i == page ? !skip_fault_page : !states_.populated(i); };

    Outcome outcome = Outcome::installed(FillKind::Zero, 0);
    bool every_run_done = true;
    for (size_t at = window.first; at < window.end();) {
        if (!wanted(at)) {
            ++at;
            continue;
        }
        size_t run_end = at + 1;
        while (run_end < window.end() && wanted(run_end))
            ++run_end;
        uffd::FillResult r = sink.zero(ctx.address_of(at), (run_end - at) * ctx.page_size, how);
        outcome.pages += uint32_t(r.pages);
        const bool has_fault_page = at <= page && page < run_end;
        if (r.ok()) {
            states_.populate(at, run_end - at, installed_as);
        } else if (has_fault_page) {
            // The page a thread waits for could not be placed: that decides
            // the answer. Failures elsewhere in the window are nobody's
            // concern: those pages fault on their own later.
            Outcome failed = Outcome::from_failure(r);
            failed.pages = outcome.pages;
            return failed;
        } else {
            every_run_done = false;
        }
        at = run_end;
    }
    if (every_run_done && !skip_fault_page) {
        outcome.present_lo = ctx.address_of(window.first);
        outcome.present_hi = ctx.address_of(window.end());
    }
    return outcome;
}

} // namespace faultline::memory
