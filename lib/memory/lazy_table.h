// memory/lazy_table.h — zeroed memory for per-page tables, paid for as used.
//
// Every per-page table of an object (page states, eviction lists, swap
// words and slots, dirty bits) is indexed by page over the object's whole
// size, which may be terabytes of NoReserve address space. MAP_NORESERVE
// anonymous memory makes that free until touched: the kernel provides zero
// pages lazily, and the fault path never allocates to record a state.
#pragma once

#include <cstddef>
#include <sys/mman.h>

namespace faultline::memory {

// `bytes` of zeroed, lazily committed memory, or nullptr.
template <typename T = void>
T* map_lazy_table(size_t bytes) noexcept
{
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<T*>(p);
}

inline void unmap_lazy_table(void* table, size_t bytes) noexcept
{
    if (table)
        munmap(table, bytes);
}

} // namespace faultline::memory
