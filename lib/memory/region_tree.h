// memory/region_tree.h — the regions of the arena, by address.
//
// A Boost.Intrusive red-black tree of Regions keyed by base address, beside a
// RangeAllocator for the free space between them. Lookups are O(log n) and
// allocation-free, so the fault path can use find_region_containing() under
// the shared lock. Placement (allocation of address ranges) happens on API
// threads under the exclusive lock.
//
// Locking: lock() guards the tree and the allocator. Handler threads take it
// shared for one lookup and the in-flight increment, nothing else; API
// threads take it exclusively for each structural change and never across a
// system call that waits on a handler (see docs/design.md, "Locks").
#pragma once

#include "memory/range_allocator.h"
#include "memory/region.h"

#include <boost/intrusive/set.hpp>

#include <functional>
#include <memory>
#include <shared_mutex>
#include <vector>

namespace faultline::memory {

class RegionTree {
public:
    RegionTree(uintptr_t base, size_t size, size_t page_size);
    ~RegionTree();
    RegionTree(const RegionTree&) = delete;
    RegionTree& operator=(const RegionTree&) = delete;

    std::shared_mutex& lock() const { return lock_; }

    // Address-range placement (caller holds the lock exclusively).
    Result<Range> place_anywhere(size_t size, size_t alignment);
    Result<Range> place_specifically(uintptr_t address, size_t size);
    Result<void> release_range(Range range) { return free_.free(range); }

    // Takes ownership. The region's reserved range must have been placed.
    void insert(std::unique_ptr<Region> region);
    // Unlinks and hands back ownership.
    std::unique_ptr<Region> remove(Region& region);

    Region* find_region_containing(uintptr_t address) const noexcept;
    // The regions overlapping [base, base+size), in address order.
    std::vector<Region*> regions_overlapping(uintptr_t base, size_t size) const;
    // True when [base, base+size) is covered by regions with no hole.
    bool covers(uintptr_t base, size_t size) const;

    // Fault path: find the region and count a fault in flight, under the
    // shared lock. Returns nullptr when no region contains `address`.
    Region* acquire_for_fault(uintptr_t address) const noexcept;
    // Fault path: the fault is over. The count drops under the shared lock
    // too, so that wait_for_faults_to_end() can tell when the handler has
    // stopped touching the Region, not merely decremented its counter.
    void release_after_fault(Region& region) const noexcept;
    // API path, for a region already removed from the tree: returns once no
    // handler uses it any more; then it may be freed. Caller must not hold
    // lock().
    void wait_for_faults_to_end(Region& region) const noexcept;

    size_t region_count() const noexcept { return regions_.size(); }
    void for_each(const std::function<void(Region&)>& fn) const;
    const RangeAllocator& free_space() const { return free_; }

private:
    struct ByBase {
        bool operator()(const Region& a, const Region& b) const { return a.base() < b.base(); }
    };
    struct KeyOfRegion {
        using type = uintptr_t;
        uintptr_t operator()(const Region& r) const { return r.base(); }
    };
    using Tree = boost::intrusive::set<Region,
        boost::intrusive::member_hook<Region, boost::intrusive::set_member_hook<>, &Region::tree_hook>,
        boost::intrusive::key_of_value<KeyOfRegion>>;

    mutable std::shared_mutex lock_;
    Tree regions_;
    RangeAllocator free_;
};

} // namespace faultline::memory
