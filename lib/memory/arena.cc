#include "memory/arena.h"

#include "os/virtual_memory.h"
#include "support/try.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace faultline::memory {

Result<Arena> Arena::try_create(uffd::Userfaultfd& uffd, size_t size, size_t alignment)
{
    size_t page = os::page_size();
    if (size == 0 || size % page != 0)
        return fail(EINVAL, "arena size must be a non-zero multiple of the page size");
    void* p = os::reserve(size, alignment);
    if (!p)
        return failf(errno, "cannot reserve the arena: %s", strerror(errno));
    Arena arena(uintptr_t(p), size);
    auto ioctls = uffd.register_range(uintptr_t(p), size, kModes);
    if (!ioctls)
        return std::unexpected(ioctls.error());
    arena.ioctls_ = *ioctls;
    return arena;
}

Arena::Arena(Arena&& o) noexcept
    : base_(o.base_)
    , size_(o.size_)
    , ioctls_(o.ioctls_)
    , released_(o.released_)
    , sealed_(std::move(o.sealed_))
{
    o.base_ = 0;
    o.size_ = 0;
}

Arena::~Arena() { release(); }

void Arena::release() noexcept
{
    if (!size_ || released_)
        return;
    released_ = true;
    // Unmap around the sealed ranges; those stay until the process exits and
    // become plain anonymous memory once the userfaultfd closes.
    std::sort(sealed_.begin(), sealed_.end(), [](const Range& a, const Range& b) { return a.base < b.base; });
    uintptr_t at = base_;
    for (const Range& r : sealed_) {
        if (r.base > at)
            os::unmap(at, r.base - at);
        at = std::max(at, r.end());
    }
    if (end() > at)
        os::unmap(at, end() - at);
}

Result<void> Arena::reset(Range range, uffd::Userfaultfd& uffd)
{
    if (int rc = os::replace_with_reservation(range.base, range.size); rc < 0)
        return failf(-rc, "cannot reset arena range: %s", strerror(-rc));
    TRY(uffd.register_range(range.base, range.size, kModes));
    return {};
}

Result<void> Arena::recycle(Range range, bool named)
{
    if (int rc = os::discard(range.base, range.size); rc < 0)
        return failf(-rc, "cannot drop the pages of an arena range: %s", strerror(-rc));
    // A name left on the range would keep it from merging with the free
    // arena around it (one VMA more per hole).
    if (named)
        (void)os::set_anon_name(range.base, range.size, nullptr);
    return {};
}

} // namespace faultline::memory
