#include "memory/anonymous_vm_object.h"

#include "fault/page_installer.h"

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
    auto* states = allocate_page_states(size / page_size);
    if (!states)
        return fail(ENOMEM, "cannot reserve page-state array");
    auto* object = new (std::nothrow) AnonymousVMObject(size, page_size, states, -1);
    if (!object) {
        release_page_states(states, size / page_size);
        return fail(ENOMEM, "out of memory for VMObject");
    }
    return boost::intrusive_ptr<AnonymousVMObject>(object);
}

Result<boost::intrusive_ptr<AnonymousVMObject>> AnonymousVMObject::try_create_shared_with_size(size_t size, size_t page_size, const char* name)
{
    if (size == 0 || size % page_size != 0)
        return fail(EINVAL, "object size must be a non-zero multiple of the page size");
    int fd = memfd_create(name && *name ? name : "faultline-shared", MFD_CLOEXEC);
    if (fd < 0)
        return fail(errno, std::string("memfd_create failed: ") + strerror(errno));
    if (ftruncate(fd, off_t(size)) != 0) {
        int err = errno;
        close(fd);
        return fail(err, std::string("sizing the shared object failed: ") + strerror(err));
    }
    auto* states = allocate_page_states(size / page_size);
    if (!states) {
        close(fd);
        return fail(ENOMEM, "cannot reserve page-state array");
    }
    auto* object = new (std::nothrow) AnonymousVMObject(size, page_size, states, fd);
    if (!object) {
        release_page_states(states, size / page_size);
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
        (void)fallocate(memfd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(first * page_size_), off_t(count * page_size_));
    forget_pages(first, count);
}

FaultOutcome AnonymousVMObject::handle_missing_page(const FaultContext& ctx, fault::PageInstaller& installer, uint64_t* pages_installed) noexcept
{
    // Only the page a thread is waiting for. It is installed even if our
    // state says populated, because the state is a hint (a page may have
    // been dropped behind it). The neighbours come in fault_around(), after
    // the waiting thread has been woken.
    *pages_installed = 0;
    FaultOutcome outcome = installer.zero_fill(ctx.page, page_size_, ctx.write, pages_installed);
    if (outcome == FaultOutcome::Installed)
        mark_populated((ctx.page - ctx.region_base + ctx.object_offset) / page_size_, 1, ctx.write ? PageState::Present : PageState::ZeroMapped);
    return outcome;
}

void AnonymousVMObject::fault_around(const FaultContext& ctx, fault::PageInstaller& installer, uint64_t* pages_installed) noexcept
{
    *pages_installed = 0;
    if (ctx.fault_around_pages <= 1)
        return;
    const size_t page = page_size_;
    auto index_of = [&](uintptr_t addr) { return (addr - ctx.region_base + ctx.object_offset) / page; };
    // Hold the window to both the region and an aligned block of
    // fault_around_pages around the fault, so concurrent faults in one block
    // install the same window instead of overlapping ones.
    uintptr_t window = uintptr_t(ctx.fault_around_pages) * page;
    uintptr_t lo = ctx.page - (ctx.page - ctx.region_base) % window;
    uintptr_t hi = lo + window;
    if (hi > ctx.region_end || hi < lo)
        hi = ctx.region_end;
    const PageState installed_as = ctx.write ? PageState::Present : PageState::ZeroMapped;

    // One ioctl per run of unpopulated pages. Failures here are not any
    // thread's concern: those pages will fault on their own later.
    uintptr_t at = lo;
    while (at < hi) {
        if (page_state(index_of(at)) != PageState::Unpopulated) {
            at += page;
            continue;
        }
        uintptr_t run_end = at + page;
        while (run_end < hi && page_state(index_of(run_end)) == PageState::Unpopulated)
            run_end += page;
        uint64_t n = 0;
        FaultOutcome around = installer.zero_fill(at, run_end - at, ctx.write, &n);
        *pages_installed += n;
        if (around != FaultOutcome::Installed)
            return;
        mark_populated(index_of(at), (run_end - at) / page, installed_as);
        at = run_end;
    }
}

} // namespace faultline::memory
