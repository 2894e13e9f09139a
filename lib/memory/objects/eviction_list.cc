#include "memory/objects/eviction_list.h"

#include "memory/lazy_table.h"

#include <cerrno>
#include <new>
#include <sys/mman.h>

namespace faultline::memory {

EvictionList::EvictionList(size_t pages, uint32_t* next, uint32_t* prev, std::atomic<uint8_t>* flags,
    std::atomic<uint8_t>* pins) noexcept
    : pages_(pages)
    , next_(next)
    , prev_(prev)
    , flags_(flags)
    , pins_(pins)
{
}

Result<std::unique_ptr<EvictionList>> EvictionList::create(size_t pages) noexcept
{
    if (pages == 0 || pages > UINT32_MAX)
        return fail(EINVAL, "an eviction list covers 1 to 2^32-1 pages");
    auto* next = static_cast<uint32_t*>(map_lazy_table(pages * sizeof(uint32_t)));
    auto* prev = static_cast<uint32_t*>(map_lazy_table(pages * sizeof(uint32_t)));
    auto* flags = static_cast<std::atomic<uint8_t>*>(map_lazy_table(pages));
    auto* pins = static_cast<std::atomic<uint8_t>*>(map_lazy_table(pages));
    std::unique_ptr<EvictionList> list;
    if (next && prev && flags && pins)
        list.reset(new (std::nothrow) EvictionList(pages, next, prev, flags, pins));
    if (!list) {
        if (next)
            munmap(next, pages * sizeof(uint32_t));
        if (prev)
            munmap(prev, pages * sizeof(uint32_t));
        if (flags)
            munmap(flags, pages);
        if (pins)
            munmap(pins, pages);
        return fail(ENOMEM, "cannot reserve an eviction list");
    }
    return list;
}

EvictionList::~EvictionList()
{
    munmap(next_, pages_ * sizeof(uint32_t));
    munmap(prev_, pages_ * sizeof(uint32_t));
    munmap(flags_, pages_);
    munmap(pins_, pages_);
}

void EvictionList::link_back(size_t page) noexcept
{
    const uint32_t id = uint32_t(page + 1);
    prev_[page] = tail_;
    next_[page] = 0;
    if (tail_)
        next_[tail_ - 1] = id;
    else
        head_ = id;
    tail_ = id;
}

void EvictionList::unlink(size_t page) noexcept
{
    const uint32_t p = prev_[page], n = next_[page];
    if (p)
        next_[p - 1] = n;
    else
        head_ = n;
    if (n)
        prev_[n - 1] = p;
    else
        tail_ = p;
    prev_[page] = next_[page] = 0;
}

void EvictionList::push_back(size_t page) noexcept
{
    if (page >= pages_)
        return;
    std::lock_guard g(lock_);
    if (flags_[page].load(std::memory_order_relaxed) & kListed)
        return;
    link_back(page);
    flags_[page].fetch_or(kListed, std::memory_order_relaxed);
    size_.fetch_add(1, std::memory_order_relaxed);
}

void EvictionList::remove(size_t page) noexcept
{
    if (page >= pages_)
        return;
    std::lock_guard g(lock_);
    if (!(flags_[page].load(std::memory_order_relaxed) & kListed))
        return;
    unlink(page);
    flags_[page].fetch_and(uint8_t(~(kListed | kReferenced | kZapped)), std::memory_order_relaxed);
    size_.fetch_sub(1, std::memory_order_relaxed);
}

bool EvictionList::rotate_front(size_t& page) noexcept
{
    std::lock_guard g(lock_);
    if (!head_)
        return false;
    page = head_ - 1;
    if (head_ != tail_) {
        unlink(page);
        link_back(page);
    }
    return true;
}

bool EvictionList::pin(size_t page) noexcept
{
    uint8_t now = pins_[page].load(std::memory_order_acquire);
    for (;;) {
        if (now & kDropping)
            return false;
        if ((now & kPinMask) == kPinMask)
            return false; // 31 faults on one page at once: the next retries
        // A pin on a page being evicted cancels the eviction: the page is
        // in use.
        uint8_t next = uint8_t(now + 1) | ((now & kEvicting) ? kCancelled : 0);
        if (pins_[page].compare_exchange_weak(now, next, std::memory_order_acq_rel))
            return true;
    }
}

void EvictionList::unpin(size_t page) noexcept { pins_[page].fetch_sub(1, std::memory_order_acq_rel); }

bool EvictionList::begin_evict(size_t page) noexcept
{
    uint8_t now = pins_[page].load(std::memory_order_acquire);
    for (;;) {
        if (now & (kPinMask | kEvicting | kDropping))
            return false;
        if (pins_[page].compare_exchange_weak(now, kEvicting, std::memory_order_acq_rel))
            return true;
    }
}

bool EvictionList::commit_evict(size_t page) noexcept
{
    uint8_t expected = kEvicting;
    return pins_[page].compare_exchange_strong(expected, kDropping, std::memory_order_acq_rel);
}

void EvictionList::end_evict(size_t page) noexcept
{
    // Keep the pins that arrived (a cancelled eviction), drop the flags.
    pins_[page].fetch_and(kPinMask, std::memory_order_acq_rel);
}

} // namespace faultline::memory
