#include "runtime/region_operations.h"

#include "os/virtual_memory.h"
#include "support/log.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <shared_mutex>

namespace faultline {

using memory::Region;

Result<void> RegionOperations::validate_range(uintptr_t address, size_t size) const noexcept
{
    if (size == 0)
        return fail(EINVAL, "size is zero");
    if (address % page_ != 0 || size % page_ != 0)
        return fail(EINVAL, "address and size must be multiples of the page size");
    if (address + size < address)
        return fail(EINVAL, "address + size overflows");
    if (!arena_.contains(address, size))
        return fail(EINVAL, "range is not inside the arena");
    return {};
}

Result<std::vector<Region*>> RegionOperations::covering(uintptr_t address, size_t size, Cover cover) const
{
    std::shared_lock tree(tree_.lock());
    if (!tree_.covers(address, size))
        return fail(ENOENT, "part of the range is not mapped");
    auto regions = tree_.regions_overlapping(address, size);
    if (!cover.allow_immutable) {
        for (Region* r : regions)
            if (r->is_immutable())
                return failf(EPERM, "region '%s' is immutable", r->name().c_str());
    }
    return regions;
}

Region* RegionOperations::find(uintptr_t address) const
{
    std::shared_lock tree(tree_.lock());
    return tree_.find_region_containing(address);
}

void RegionOperations::replace(Region& old, std::vector<std::unique_ptr<Region>> pieces)
{
    std::vector<Region*> views;
    for (auto& piece : pieces)
        views.push_back(piece.get());
    std::unique_ptr<Region> retired;
    {
        std::unique_lock tree(tree_.lock());
        retired = tree_.remove(old);
        for (auto& piece : pieces)
            tree_.insert(std::move(piece));
    }
    // A handler may still be resolving a fault through the old Region; its
    // counters and its object must outlive that. Pieces view the same
    // object, so nothing changes for the page being installed.
    tree_.wait_for_faults_to_end(*retired);
    Region::share_counters(*retired, views.data(), views.size());
}

void RegionOperations::restore_access(const std::vector<Region*>& regions, uintptr_t address, size_t size) const noexcept
{
    const uintptr_t end = address + size;
    for (size_t i = 0; i < regions.size();) {
        const Access access = regions[i]->access();
        const uintptr_t lo = std::max(address, regions[i]->base());
        uintptr_t hi = std::min(end, regions[i]->end());
        size_t next = i + 1;
        for (; next < regions.size() && regions[next]->base() == hi && regions[next]->access() == access; ++next)
            hi = std::min(end, regions[next]->end());
        if (int rc = os::protect(lo, hi - lo, int(access)); rc < 0)
            log::error("cannot restore the access of {:#x}+{:#x} after a refused change: {}", lo, hi - lo, strerror(-rc));
        i = next;
    }
}

Result<std::vector<Region*>> RegionOperations::isolate(uintptr_t address, size_t size)
{
    for (uintptr_t boundary : { address, address + size }) {
        Region* r = find(boundary);
        if (!r || r->base() == boundary)
            continue;
        std::vector<std::unique_ptr<Region>> pieces;
        pieces.push_back(TRY(r->try_create_piece(r->base(), boundary - r->base())));
        pieces.push_back(TRY(r->try_create_piece(boundary, r->end() - boundary)));
        replace(*r, std::move(pieces));
    }
    std::shared_lock tree(tree_.lock());
    return tree_.regions_overlapping(address, size);
}

} // namespace faultline
