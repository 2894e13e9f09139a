#include "uffd/userfaultfd.h"

#include "os/virtual_memory.h"

#include "os/fault_injection.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <algorithm>
#include <cstdio>
#include <unistd.h>

namespace faultline::uffd {

using os::Feature;
using os::FaultInjection;
using os::InjectOp;

namespace {

// Features we ask for when the kernel offers them. Each is optional: the
// runtime works without any of them (docs/kernels.md).
// PAGEFAULT_FLAG_WP lets anonymous ranges be registered for write-protect
// faults; WP_HUGETLBFS_SHMEM and MINOR_SHMEM do the same for memfd ranges.
// Asking for them changes nothing until a range is registered that way.
constexpr uint64_t kWantedFeatures = UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON | UFFD_FEATURE_PAGEFAULT_FLAG_WP
    | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_MINOR_SHMEM;

struct Optional {
    Feature feature;
    uint64_t bits;
};
// The optional features negotiated through UFFDIO_API, and their bits.
constexpr Optional kOptional[] = {
    { Feature::ThreadId, UFFD_FEATURE_THREAD_ID },
    { Feature::Poison, UFFD_FEATURE_POISON },
    { Feature::WriteProtect, UFFD_FEATURE_PAGEFAULT_FLAG_WP },
    { Feature::WpShmem, UFFD_FEATURE_WP_HUGETLBFS_SHMEM },
    { Feature::Minor, UFFD_FEATURE_MINOR_SHMEM },
};

int open_syscall(bool user_mode_only)
{
    int flags = O_CLOEXEC | O_NONBLOCK | (user_mode_only ? UFFD_USER_MODE_ONLY : 0);
    int fd = int(syscall(SYS_userfaultfd, flags));
    return fd < 0 ? -errno : fd;
}

int open_devnode(bool user_mode_only)
{
    int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0)
        return -errno;
    int flags = O_CLOEXEC | O_NONBLOCK | (user_mode_only ? UFFD_USER_MODE_ONLY : 0);
    int fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    int err = errno;
    ::close(dev);
    return fd < 0 ? -err : fd;
}

// UFFDIO_API may be issued once per descriptor, so the probe that learns
// which features exist uses a descriptor of its own.
long handshake(int fd, uint64_t features, uint64_t* granted)
{
    uffdio_api api {};
    api.api = UFFD_API;
    api.features = features;
    if (ioctl(fd, UFFDIO_API, &api) < 0)
        return -errno;
    *granted = api.features;
    return 0;
}

} // namespace

Result<Userfaultfd> Userfaultfd::open(UffdMode mode, const os::FeatureSet& disabled) { return open_with(mode, disabled, 0); }

Result<Userfaultfd> Userfaultfd::open_async_wp(UffdMode mode, const os::FeatureSet& disabled)
{
    if (disabled.has(Feature::WpAsync) || disabled.has(Feature::WpShmem) || disabled.has(Feature::Minor))
        return fail(ENOTSUP, "asynchronous write-protect hidden by FAULTLINE_DISABLE");
    return open_with(mode, disabled, UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_MINOR_SHMEM);
}

Result<Userfaultfd> Userfaultfd::open_with(UffdMode mode, const os::FeatureSet& disabled, uint64_t required)
{
    struct Route {
        const char* name;
        Feature feature;
        int (*open)(bool);
    };
    const Route routes[] = {
        { "syscall", Feature::Syscall, open_syscall },
        { "/dev/userfaultfd", Feature::DevNode, open_devnode },
    };
    // Full mode first: only it serves faults the kernel takes on our pages
    // (read(2) into a region). User-mode-only is the fallback.
    bool try_full = mode != UffdMode::UserModeOnly;
    bool try_umo = mode != UffdMode::Full;

    // What each route said, for the error message (no allocation: the
    // preloaded malloc opens its runtime before malloc works).
    char tried[512] = "";
    size_t tried_len = 0;
    for (int pass = 0; pass < 2; ++pass) {
        bool umo = pass == 1;
        if ((umo && !try_umo) || (!umo && !try_full))
            continue;
        for (const Route& route : routes) {
            if (disabled.has(route.feature))
                continue;
            int probe = route.open(umo);
            if (probe < 0) {
                int n = snprintf(tried + tried_len, sizeof tried - tried_len, "%s%s%s: %s", tried_len ? ", " : "", route.name,
                    umo ? " (user-mode-only)" : "", strerror(-probe));
                if (n > 0)
                    tried_len = std::min(sizeof tried - 1, tried_len + size_t(n));
                continue;
            }
            uint64_t offered = 0;
            long rc = handshake(probe, 0, &offered);
            ::close(probe);
            if (rc < 0)
                return failf(int(-rc), "UFFDIO_API failed: %s", strerror(int(-rc)));

            if ((offered & required) != required)
                return fail(ENOTSUP, "the kernel does not offer the userfaultfd features asked for");
            uint64_t request = offered & kWantedFeatures;
            for (const Optional& o : kOptional)
                if (disabled.has(o.feature))
                    request &= ~o.bits;
            request |= required;

            Userfaultfd uffd;
            uffd.fd_ = route.open(umo);
            if (uffd.fd_ < 0)
                return failf(-uffd.fd_, "reopening userfaultfd failed: %s", strerror(-uffd.fd_));
            uint64_t granted = 0;
            rc = handshake(uffd.fd_, request, &granted);
            if (rc < 0)
                return failf(int(-rc), "UFFDIO_API with features failed: %s", strerror(int(-rc)));
            uffd.user_mode_only_ = umo;
            uffd.features_ = granted & request;
            uffd.disabled_ = disabled;
            uffd.route_ = route.name;
            uffd.in_use_.set(route.feature);
            for (const Optional& o : kOptional)
                uffd.in_use_.set(o.feature, (uffd.features_ & o.bits) == o.bits);
            // UFFDIO_CONTINUE_MODE_WP has no feature bit of its own. It came
            // in 6.4 with UFFD_FEATURE_WP_UNPOPULATED, whose offer tells the
            // kernel is that new (the bit is only looked at, never asked
            // for: it would change what write-protecting an empty anonymous
            // range does). Should a kernel offer the one without the other,
            // the EINVAL fallback in memory/objects/inode_vm_object.cc
            // still applies.
            uffd.in_use_.set(Feature::ContinueWp,
                !disabled.has(Feature::ContinueWp) && (offered & UFFD_FEATURE_WP_UNPOPULATED)
                    && uffd.in_use_.has(Feature::WpShmem) && uffd.in_use_.has(Feature::Minor));
            return uffd;
        }
    }
    return failf(EPERM,
        "userfaultfd is not available to this process (%s). To fix, do one of: "
        "allow unprivileged use with `sysctl vm.unprivileged_userfaultfd=1`; give this user read/write "
        "access to /dev/userfaultfd (Linux 6.1+, e.g. a group or ACL); run with CAP_SYS_PTRACE; or let the "
        "runtime use user-mode-only mode (UffdMode::Auto or UserModeOnly, Linux 5.11+).",
        tried_len ? tried : "every route disabled by FAULTLINE_DISABLE");
}

Userfaultfd::Userfaultfd(Userfaultfd&& other) noexcept { *this = std::move(other); }

Userfaultfd& Userfaultfd::operator=(Userfaultfd&& other) noexcept
{
    if (this != &other) {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = other.fd_;
        other.fd_ = -1;
        user_mode_only_ = other.user_mode_only_;
        features_ = other.features_;
        in_use_ = other.in_use_;
        disabled_ = other.disabled_;
        route_ = other.route_;
    }
    return *this;
}

Userfaultfd::~Userfaultfd()
{
    if (fd_ >= 0)
        ::close(fd_);
}

Result<uint64_t> Userfaultfd::register_range(uintptr_t start, size_t len, Mode modes)
{
    uffdio_register reg {};
    reg.range.start = start;
    reg.range.len = len;
    if (has(modes, Mode::Missing))
        reg.mode |= UFFDIO_REGISTER_MODE_MISSING;
    if (has(modes, Mode::WriteProtect))
        reg.mode |= UFFDIO_REGISTER_MODE_WP;
    if (has(modes, Mode::Minor))
        reg.mode |= UFFDIO_REGISTER_MODE_MINOR;
    if (ioctl(fd_, UFFDIO_REGISTER, &reg) < 0)
        return failf(errno, "UFFDIO_REGISTER failed: %s", strerror(errno));
    return uint64_t(reg.ioctls);
}

Result<void> Userfaultfd::unregister_range(uintptr_t start, size_t len)
{
    uffdio_range range { start, len };
    if (ioctl(fd_, UFFDIO_UNREGISTER, &range) < 0)
        return failf(errno, "UFFDIO_UNREGISTER failed: %s", strerror(errno));
    return {};
}

void Userfaultfd::refine_features(uint64_t range_ioctls)
{
    // The kernel lists the range ioctls it supports for a registered VMA; a
    // feature bit alone does not prove the ioctl works there.
    in_use_.set(Feature::ZeroPage, (range_ioctls & (uint64_t(1) << _UFFDIO_ZEROPAGE)) && !disabled_.has(Feature::ZeroPage));
    if (!(range_ioctls & (uint64_t(1) << _UFFDIO_POISON)))
        in_use_.set(Feature::Poison, false);
}

long Userfaultfd::copy(uintptr_t dst, const void* src, size_t len, bool wake, bool write_protect, size_t* done) noexcept
{
    if (done)
        *done = 0;
    if (int injected = FaultInjection::take(InjectOp::Copy, dst))
        return -injected;
    uffdio_copy c {};
    c.dst = dst;
    c.src = uintptr_t(src);
    c.len = len;
    c.mode = (wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE) | (write_protect ? UFFDIO_COPY_MODE_WP : 0);
    if (ioctl(fd_, UFFDIO_COPY, &c) == 0) {
        if (done)
            *done = len;
        return 0;
    }
    long err = -errno;
    if (done && c.copy > 0)
        *done = size_t(c.copy);
    return err;
}

long Userfaultfd::zeropage(uintptr_t dst, size_t len, bool wake, size_t* done) noexcept
{
    if (done)
        *done = 0;
    if (int injected = FaultInjection::take(InjectOp::ZeroPage, dst))
        return -injected;
    uffdio_zeropage z {};
    z.range.start = dst;
    z.range.len = len;
    z.mode = wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE;
    if (ioctl(fd_, UFFDIO_ZEROPAGE, &z) == 0) {
        if (done)
            *done = len;
        return 0;
    }
    long err = -errno;
    if (done && z.zeropage > 0)
        *done = size_t(z.zeropage);
    return err;
}

long Userfaultfd::continue_range(uintptr_t dst, size_t len, bool wake, bool write_protect, size_t* done) noexcept
{
    if (done)
        *done = 0;
    if (int injected = FaultInjection::take(InjectOp::Continue, dst))
        return -injected;
    uffdio_continue c {};
    c.range.start = dst;
    c.range.len = len;
    c.mode = (wake ? 0 : UFFDIO_CONTINUE_MODE_DONTWAKE) | (write_protect ? UFFDIO_CONTINUE_MODE_WP : 0);
    if (ioctl(fd_, UFFDIO_CONTINUE, &c) == 0) {
        if (done)
            *done = len;
        return 0;
    }
    long err = -errno;
    if (done && c.mapped > 0)
        *done = size_t(c.mapped);
    return err;
}

long Userfaultfd::writeprotect(uintptr_t start, size_t len, bool protect, bool wake) noexcept
{
    long rc = writeprotect_once(start, len, protect, wake);
    const size_t page = os::page_size();
    if (rc != -ENOENT || len <= page)
        return rc;
    // Older kernels (6.1 among them) change the protection within one VMA
    // per call (ENOENT for a range crossing into another, even a registered
    // one), and a region can span several VMAs that did not merge. Page by page,
    // only a page the kernel cannot find is ENOENT, reported after the rest
    // is done: a protection silently missing would let a write go unseen.
    long first_error = 0;
    for (uintptr_t at = start; at < start + len; at += page) {
        long r = writeprotect_once(at, page, protect, wake);
        if (r < 0 && first_error == 0)
            first_error = r;
    }
    return first_error;
}

long Userfaultfd::writeprotect_once(uintptr_t start, size_t len, bool protect, bool wake) noexcept
{
    if (int injected = FaultInjection::take(InjectOp::WriteProtect, start))
        return -injected;
    uffdio_writeprotect w {};
    w.range.start = start;
    w.range.len = len;
    // The kernel refuses DONTWAKE together with WP (EINVAL): protecting
    // wakes nobody anyway; only lifting a protection may leave the wake to
    // the caller.
    w.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : (wake ? 0 : UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
    if (ioctl(fd_, UFFDIO_WRITEPROTECT, &w) == 0)
        return 0;
    return -errno;
}

long Userfaultfd::poison(uintptr_t dst, size_t len, bool wake) noexcept
{
    if (int injected = FaultInjection::take(InjectOp::Poison, dst))
        return -injected;
    uffdio_poison p {};
    p.range.start = dst;
    p.range.len = len;
    p.mode = wake ? 0 : UFFDIO_POISON_MODE_DONTWAKE;
    if (ioctl(fd_, UFFDIO_POISON, &p) == 0)
        return 0;
    return -errno;
}

long Userfaultfd::wake(uintptr_t start, size_t len) noexcept
{
    if (int injected = FaultInjection::take(InjectOp::Wake, start))
        return -injected;
    uffdio_range r { start, len };
    if (ioctl(fd_, UFFDIO_WAKE, &r) == 0)
        return 0;
    return -errno;
}

long Userfaultfd::read_events(uffd_msg* out, size_t max) noexcept
{
    ssize_t n = ::read(fd_, out, max * sizeof(uffd_msg));
    if (n < 0)
        return errno == EAGAIN ? 0 : -errno;
    return long(size_t(n) / sizeof(uffd_msg));
}

} // namespace faultline::uffd
