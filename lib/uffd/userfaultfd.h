// uffd/userfaultfd.h — a thin wrapper over one userfaultfd.
//
// Opening, negotiation and registration return Result (they run on API
// threads). The fault-path operations are noexcept, allocate nothing and
// return 0 or a negative errno, exactly what the kernel said, so the layer
// above (PageFiller) decides what each error means. One method per ioctl,
// in the kernel's words: copy, zeropage, continue, poison, writeprotect,
// wake.
#pragma once

#include "os/features.h"
#include "os/uffd_compat.h"
#include "uffd/modes.h"

#include <faultline/result.h>
#include <faultline/types.h>

#include <cstddef>
#include <cstdint>

namespace faultline::uffd {

class Userfaultfd {
public:
    // Opens a userfaultfd by the routes `mode` allows (the userfaultfd(2)
    // syscall, then /dev/userfaultfd, each with and without
    // UFFD_USER_MODE_ONLY), negotiates the API and every wanted feature the
    // kernel offers and `disabled` does not hide. On failure the message
    // names the fix (sysctl, device permissions, capability).
    static Result<Userfaultfd> open(UffdMode mode, const os::FeatureSet& disabled);
    // A second userfaultfd whose write-protect faults the kernel resolves
    // itself (UFFD_FEATURE_WP_ASYNC, 6.7): a write to a protected page just
    // marks it written, and PAGEMAP_SCAN reports and re-protects the written
    // pages. The feature applies to the whole descriptor, so the ranges that
    // track writes this way are registered with this one. ENOTSUP when the
    // kernel (or `disabled`) does not offer it with write-protect and minor
    // faults on memfd ranges.
    static Result<Userfaultfd> open_async_wp(UffdMode mode, const os::FeatureSet& disabled);

    Userfaultfd(Userfaultfd&& other) noexcept;
    Userfaultfd& operator=(Userfaultfd&& other) noexcept;
    Userfaultfd(const Userfaultfd&) = delete;
    ~Userfaultfd();

    int fd() const noexcept { return fd_; }
    bool user_mode_only() const noexcept { return user_mode_only_; }
    // UFFD_FEATURE_* bits granted by UFFDIO_API.
    uint64_t kernel_features() const noexcept { return features_; }
    // The optional features in use (detected minus disabled).
    const os::FeatureSet& features() const noexcept { return in_use_; }
    // The route that worked: "syscall" or "/dev/userfaultfd".
    const char* route() const noexcept { return route_; }

    // Registers [start, start+len) for the faults `modes` names; returns the
    // mask of range ioctls the kernel supports there. EINVAL when a mode
    // is not available for this kind of memory.
    Result<uint64_t> register_range(uintptr_t start, size_t len, Mode modes);
    Result<void> unregister_range(uintptr_t start, size_t len);
    // Narrows features() to what a registered range supports (POISON and
    // ZEROPAGE must appear in its ioctl mask). Called once, before any
    // handler thread starts.
    void refine_features(uint64_t range_ioctls);

    // Fault path. Each returns 0 or -errno; `done` (if given) receives the
    // bytes completed before an error (EAGAIN/EEXIST partial progress).
    long copy(uintptr_t dst, const void* src, size_t len, bool wake, bool write_protect, size_t* done) noexcept;
    long zeropage(uintptr_t dst, size_t len, bool wake, size_t* done) noexcept;
    // UFFDIO_CONTINUE: maps pages already in the page cache (minor faults).
    long continue_range(uintptr_t dst, size_t len, bool wake, bool write_protect, size_t* done) noexcept;
    long poison(uintptr_t dst, size_t len, bool wake) noexcept;
    // UFFDIO_WRITEPROTECT: sets (`protect`) or clears the write protection.
    // `wake` only matters when clearing (setting it wakes no one).
    // A range that crosses VMAs is done page by page where the kernel
    // refuses it (older kernels, 6.1 among them).
    long writeprotect(uintptr_t start, size_t len, bool protect, bool wake) noexcept;
    long wake(uintptr_t start, size_t len) noexcept;
    // Reads up to `max` messages (non-blocking). Returns the count, 0 when
    // none are pending, or -errno.
    long read_events(uffd_msg* out, size_t max) noexcept;

private:
    Userfaultfd() = default;
    long writeprotect_once(uintptr_t start, size_t len, bool protect, bool wake) noexcept;
    static Result<Userfaultfd> open_with(UffdMode mode, const os::FeatureSet& disabled, uint64_t required);
    int fd_ = -1;
    bool user_mode_only_ = false;
    uint64_t features_ = 0;
    os::FeatureSet in_use_;
    os::FeatureSet disabled_;
    const char* route_ = "";
};

} // namespace faultline::uffd
