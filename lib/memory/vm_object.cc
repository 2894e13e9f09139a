#include "memory/vm_object.h"

#include <sys/mman.h>

namespace faultline::memory {

VMObject::VMObject(size_t size, size_t page_size, std::atomic<uint8_t>* states)
    : size_(size)
    , page_size_(page_size)
    , states_(states)
{
}

VMObject::~VMObject()
{
    release_page_states(states_, page_count());
}

void VMObject::release_page_states(std::atomic<uint8_t>* states, size_t pages)
{
    if (states)
        munmap(states, pages);
}

std::atomic<uint8_t>* VMObject::allocate_page_states(size_t pages)
{
    static_assert(sizeof(std::atomic<uint8_t>) == 1);
    void* p = mmap(nullptr, pages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<std::atomic<uint8_t>*>(p);
}

void VMObject::forget_pages(size_t first, size_t count) noexcept
{
    for (size_t i = first; i < first + count && i < page_count(); ++i)
        states_[i].store(uint8_t(PageState::Unpopulated), std::memory_order_relaxed);
}

void VMObject::mark_populated(size_t first, size_t count, PageState to) noexcept
{
    for (size_t i = first; i < first + count && i < page_count(); ++i) {
        uint8_t expected = uint8_t(PageState::Unpopulated);
        // Only an unpopulated page changes: a page another thread already
        // installed keeps the state that thread recorded.
        states_[i].compare_exchange_strong(expected, uint8_t(to), std::memory_order_relaxed);
    }
}

} // namespace faultline::memory
