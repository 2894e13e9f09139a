#include "memory/range_allocator.h"

#include <memory>
#include <new>

namespace faultline::memory {

RangeAllocator::RangeAllocator(uintptr_t base, size_t size, size_t page)
    : base_(base)
    , size_(size)
    , page_(page)
{
    if (size > 0)
        insert(new Node { { base, size }, {}, {} });
}

RangeAllocator::~RangeAllocator()
{
    by_size_.clear();
    by_address_.clear_and_dispose([](Node* n) { delete n; });
}

void RangeAllocator::insert(Node* node)
{
    by_address_.insert(*node);
    by_size_.insert(*node);
    free_bytes_ += node->range.size;
}

void RangeAllocator::erase(Node* node)
{
    by_address_.erase(by_address_.iterator_to(*node));
    by_size_.erase(by_size_.iterator_to(*node));
    free_bytes_ -= node->range.size;
}

RangeAllocator::Node* RangeAllocator::node_containing(uintptr_t a)
{
    // upper_bound by base gives the first range starting after `a`; the one
    // before it is the only candidate.
    Node key { { a, 0 }, {}, {} };
    auto it = by_address_.upper_bound(key);
    if (it == by_address_.begin())
        return nullptr;
    --it;
    return it->range.contains(a) ? &*it : nullptr;
}

Result<Range> RangeAllocator::carve(Node& node, uintptr_t base, size_t size)
{
    Range whole = node.range;
    // Allocate the nodes for the leftovers first, so that failure leaves the
    // trees untouched.
    std::unique_ptr<Node> left, right;
    if (base > whole.base)
        left.reset(new (std::nothrow) Node { { whole.base, base - whole.base }, {}, {} });
    if (base + size < whole.end())
        right.reset(new (std::nothrow) Node { { base + size, whole.end() - (base + size) }, {}, {} });
    if ((base > whole.base && !left) || (base + size < whole.end() && !right))
        return fail(ENOMEM, "out of memory for range bookkeeping");
    erase(&node);
    delete &node;
    if (left)
        insert(left.release());
    if (right)
        insert(right.release());
    return Range { base, size };
}

Result<Range> RangeAllocator::allocate_anywhere(size_t size, size_t alignment)
{
    if (size == 0 || size % page_ != 0)
        return fail(EINVAL, "size must be a non-zero multiple of the page size");
    if (alignment < page_ || (alignment & (alignment - 1)) != 0)
        return fail(EINVAL, "alignment must be a power of two no smaller than the page size");
    if (size > size_)
        return fail(ENOMEM, "larger than the arena");

    auto fits = [&](const Node& n, uintptr_t* at) {
        uintptr_t aligned = (n.range.base + alignment - 1) & ~(alignment - 1);
        if (aligned < n.range.base || aligned - n.range.base > n.range.size)
            return false;
        if (n.range.end() - aligned < size)
            return false;
        *at = aligned;
        return true;
    };
    // Walk the ranges in (size, address) order from the first one large
    // enough. Without alignment the first one fits: O(log n). With it, a
    // range of size + alignment - page always fits, so the walk ends there
    // at the latest; the ranges passed on the way are the ones too small
    // once aligned. That keeps strict best fit (the smallest range that
    // holds the block at its alignment) at O(log n + k).
    const size_t always_fits = size + (alignment - page_) < size ? SIZE_MAX : size + (alignment - page_);
    Node key { { 0, size }, {}, {} };
    uintptr_t at = 0;
    for (auto it = by_size_.lower_bound(key); it != by_size_.end(); ++it) {
        if (fits(*it, &at))
            return carve(*it, at, size);
        if (it->range.size >= always_fits)
            break;
    }
    return fail(ENOMEM, "no free range of that size in the arena");
}

Result<Range> RangeAllocator::allocate_specific(uintptr_t address, size_t size)
{
    if (size == 0 || size % page_ != 0 || address % page_ != 0)
        return fail(EINVAL, "address and size must be page-aligned and size non-zero");
    if (address < base_ || address - base_ >= size_ || size > base_ + size_ - address)
        return fail(EINVAL, "range is not inside the arena");
    Node* node = node_containing(address);
    if (!node || node->range.end() - address < size)
        return fail(EEXIST, "range overlaps a mapped region");
    return carve(*node, address, size);
}

Result<void> RangeAllocator::free(Range range)
{
    if (range.size == 0 || range.base < base_ || range.end() > base_ + size_ || range.end() < range.base)
        return fail(EINVAL, "range is not inside the arena");
    if (range.base % page_ != 0 || range.size % page_ != 0)
        return fail(EINVAL, "range is not page-aligned");
    Node key { { range.base, 0 }, {}, {} };
    auto next = by_address_.lower_bound(key);
    Node* prev = nullptr;
    if (next != by_address_.begin())
        prev = &*std::prev(next);
    if ((prev && prev->range.end() > range.base) || (next != by_address_.end() && next->range.base < range.end()))
        return fail(EINVAL, "range is already free");

    Node* after = next != by_address_.end() && next->range.base == range.end() ? &*next : nullptr;
    Node* before = prev && prev->range.end() == range.base ? prev : nullptr;
    // Coalesce into an existing neighbour where possible, so that freeing
    // never needs to allocate when it can merge.
    if (before) {
        erase(before);
        before->range.size += range.size;
        if (after) {
            erase(after);
            before->range.size += after->range.size;
            delete after;
        }
        insert(before);
        return {};
    }
    if (after) {
        erase(after);
        after->range.base = range.base;
        after->range.size += range.size;
        insert(after);
        return {};
    }
    Node* node = new (std::nothrow) Node { range, {}, {} };
    if (!node)
        return fail(ENOMEM, "out of memory for range bookkeeping");
    insert(node);
    return {};
}

void RangeAllocator::for_each_free(const std::function<void(Range)>& fn) const
{
    for (const Node& n : by_address_)
        fn(n.range);
}

} // namespace faultline::memory
