#include "memory/arena.h"

#include "os/virtual_memory.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace faultline::memory {

Result<Arena> Arena::try_create(os::Userfaultfd& uffd, size_t size, size_t alignment)
{
    size_t page = os::page_size();
    if (size == 0 || size % page != 0)
        return fail(EINVAL, "arena size must be a non-zero multiple of the page size");
    void* p = os::reserve(size, alignment);
    if (!p)
        return fail(errno, std::string("cannot reserve the arena: ") + strerror(errno));
    Arena arena(uintptr_t(p), size);
    auto ioctls = uffd.register_missing(p, size);
    if (!ioctls)
        return std::unexpected(ioctls.error());
    arena.ioctls_ = *ioctls;
    return arena;
}

Arena::Arena(Arena&& o) noexcept
    : base_(o.base_)
    , size_(o.size_)
    , ioctls_(o.ioctls_)
    , sealed_(std::move(o.sealed_))
{
    o.base_ = 0;
    o.size_ = 0;
}

Arena::~Arena()
{
    if (!size_)
        return;
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

Result<void> Arena::reset(Range range, os::Userfaultfd& uffd)
{
    if (int rc = os::replace_with_reservation(range.base, range.size); rc < 0)
        return fail(-rc, std::string("cannot reset arena range: ") + strerror(-rc));
    auto reg = uffd.register_missing(reinterpret_cast<void*>(range.base), range.size);
    if (!reg)
        return std::unexpected(reg.error());
    return {};
}

} // namespace faultline::memory
