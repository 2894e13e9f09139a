#include "memory/region_tree.h"

#include <mutex>

namespace faultline::memory {

RegionTree::RegionTree(uintptr_t base, size_t size, size_t page_size)
    : free_(base, size, page_size)
{
}

RegionTree::~RegionTree()
{
    regions_.clear_and_dispose([](Region* r) { delete r; });
}

Result<Range> RegionTree::place_anywhere(size_t size, size_t alignment)
{
    return free_.allocate_anywhere(size, alignment);
}

Result<Range> RegionTree::place_specifically(uintptr_t address, size_t size)
{
    return free_.allocate_specific(address, size);
}

void RegionTree::insert(std::unique_ptr<Region> region)
{
    regions_.insert(*region.release());
}

std::unique_ptr<Region> RegionTree::remove(Region& region)
{
    regions_.erase(regions_.iterator_to(region));
    return std::unique_ptr<Region>(&region);
}

Region* RegionTree::find_region_containing(uintptr_t address) const noexcept
{
    // The last region starting at or below `address` is the only candidate.
    auto it = regions_.upper_bound(address);
    if (it == regions_.begin())
        return nullptr;
    --it;
    return it->contains(address) ? const_cast<Region*>(&*it) : nullptr;
}

std::vector<Region*> RegionTree::regions_overlapping(uintptr_t base, size_t size) const
{
    std::vector<Region*> out;
    uintptr_t end = base + size;
    auto it = regions_.upper_bound(base);
    if (it != regions_.begin()) {
        auto prev = std::prev(it);
        if (prev->end() > base)
            it = prev;
    }
    for (; it != regions_.end() && it->base() < end; ++it)
        out.push_back(const_cast<Region*>(&*it));
    return out;
}

bool RegionTree::covers(uintptr_t base, size_t size) const
{
    uintptr_t at = base;
    uintptr_t end = base + size;
    for (Region* r : regions_overlapping(base, size)) {
        if (r->base() > at)
            return false;
        at = r->end();
    }
    return at >= end;
}

Region* RegionTree::acquire_for_fault(uintptr_t address) const noexcept
{
    std::shared_lock guard(lock_);
    Region* region = find_region_containing(address);
    if (region)
        region->begin_fault();
    return region;
}

void RegionTree::release_after_fault(Region& region) const noexcept
{
    std::shared_lock guard(lock_);
    region.end_fault();
}

void RegionTree::wait_for_faults_to_end(Region& region) const noexcept
{
    region.wait_for_faults_to_end();
    // The last handler decremented the count and may still be inside
    // end_fault() (notifying us). It holds the shared lock until it is done;
    // taking the lock exclusively once waits for that.
    std::unique_lock guard(lock_);
}

void RegionTree::for_each(const std::function<void(Region&)>& fn) const
{
    for (const Region& r : regions_)
        fn(const_cast<Region&>(r));
}

} // namespace faultline::memory
