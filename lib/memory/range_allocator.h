// memory/range_allocator.h — the free address ranges of the arena.
//
// Free ranges live in two Boost.Intrusive red-black trees at once: one keyed
// by address (to find the range around a fixed address and to coalesce
// neighbours on free) and one keyed by (size, address) (best fit in O(log n)
// for page-aligned requests).
// Nodes are allocated on the API path only; the fault path never calls this
// class. It touches no kernel state, so it is tested without one.
#pragma once

#include <faultline/result.h>

#include <boost/intrusive/set.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace faultline::memory {

struct Range {
    uintptr_t base = 0;
    size_t size = 0;
    uintptr_t end() const { return base + size; }
    bool contains(uintptr_t a) const { return a >= base && a - base < size; }
};

class RangeAllocator {
public:
    // Manages [base, base+size). `page` is the allocation granule.
    RangeAllocator(uintptr_t base, size_t size, size_t page);
    ~RangeAllocator();
    RangeAllocator(const RangeAllocator&) = delete;
    RangeAllocator& operator=(const RangeAllocator&) = delete;

    // Best fit: the smallest free range that holds `size` bytes at
    // `alignment` (a power of two, >= page). ENOMEM when nothing fits.
    // O(log n) without alignment; with it O(log n + k), k being the free
    // ranges too small once aligned.
    Result<Range> allocate_anywhere(size_t size, size_t alignment);
    // Exactly [address, address+size). EEXIST when any part is taken,
    // EINVAL when it is not inside the managed range.
    Result<Range> allocate_specific(uintptr_t address, size_t size);
    // Returns a range taken earlier; coalesces with free neighbours.
    // Freeing a range that is (partly) free already, or not page-aligned, is
    // a bug: EINVAL.
    Result<void> free(Range range);

    size_t free_bytes() const { return free_bytes_; }
    size_t free_range_count() const { return by_address_.size(); }
    uintptr_t base() const { return base_; }
    size_t size() const { return size_; }
    void for_each_free(const std::function<void(Range)>& fn) const;

private:
    struct Node {
        Range range;
        boost::intrusive::set_member_hook<> address_hook;
        boost::intrusive::set_member_hook<> size_hook;
    };
    struct ByAddress {
        bool operator()(const Node& a, const Node& b) const { return a.range.base < b.range.base; }
    };
    struct BySize {
        bool operator()(const Node& a, const Node& b) const
        {
            return a.range.size != b.range.size ? a.range.size < b.range.size : a.range.base < b.range.base;
        }
    };
    using AddressTree = boost::intrusive::set<Node,
        boost::intrusive::member_hook<Node, boost::intrusive::set_member_hook<>, &Node::address_hook>,
        boost::intrusive::compare<ByAddress>>;
    using SizeTree = boost::intrusive::set<Node,
        boost::intrusive::member_hook<Node, boost::intrusive::set_member_hook<>, &Node::size_hook>,
        boost::intrusive::compare<BySize>>;

    // Cuts [base, base+size) out of `node`, which must contain it.
    Result<Range> carve(Node& node, uintptr_t base, size_t size);
    void insert(Node* node);
    void erase(Node* node);
    // The free node containing address `a`, or nullptr.
    Node* node_containing(uintptr_t a);

    uintptr_t base_;
    size_t size_;
    size_t page_;
    size_t free_bytes_ = 0;
    AddressTree by_address_;
    SizeTree by_size_;
};

} // namespace faultline::memory
