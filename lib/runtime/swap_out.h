// runtime/swap_out.h — the evictor's half of the swap pager: choosing cold
// anonymous pages, writing them to swap and dropping them.
//
// One step for one swap-backed object (memory/objects/swap_backed_vm_object.h):
//
//   1. choose from the object's eviction list, oldest first. Clock: a page
//      used since the evictor last passed (a write-protect fault on it, or
//      it was swapped back in) gets a second chance. Writes to a resident
//      page that was never protected are invisible, so a page reached for
//      the first time is *probed* instead: write-protected and passed over;
//      if it is written before the evictor comes back, its fault marks it
//      used. Reads are invisible to user space: a page read but never
//      written goes, and its next read brings it back marked used. Fifo
//      takes pages in order.
//   2. claim (begin_evict: no pin), give each written page a swap slot and
//      write-protect it, then write the batch to the target and wait. A
//      page swapped in and never written (Cached) is in its slot already:
//      no write.
//   3. commit (no write came meanwhile), drop the pages with MADV_DONTNEED,
//      mark them Swapped and uncharge them.
// Swap full (no slot, or the target says ENOSPC): the pages stay, the
// space is marked full and a warning is logged once; the budget then runs
// over (the evictor's overrun) rather than fail a fault.
//
// Runs on the evictor thread under the region tree's shared lock (unmap
// waits for a step; a step never sees a range change hands).
#pragma once

#include "memory/objects/swap_backed_vm_object.h"
#include "memory/region_tree.h"
#include "uffd/userfaultfd.h"

#include <faultline/types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace faultline {

class SwapOut {
public:
    SwapOut(memory::RegionTree& tree, uffd::Userfaultfd& uffd, size_t page_size, EvictionPolicy policy) noexcept
        : tree_(tree)
        , uffd_(uffd)
        , page_(page_size)
        , policy_(policy)
    {
    }

    // Evicts up to `want` pages of `object`; returns the pages dropped.
    size_t evict(memory::SwapBackedVMObject& object, size_t want);
    // Reads every swapped page of `object` back in, by touching it from this
    // thread (fork preparation: a fork child has no fault service, and must
    // find every page in its copy of the memory).
    void swap_in_all(memory::SwapBackedVMObject& object);

private:
    struct View {
        size_t first, end; // object pages
        uintptr_t base;    // address of `first`
    };
    // The regions viewing `object` (caller holds the tree's shared lock).
    std::vector<View> views_of(const memory::SwapBackedVMObject& object) const;
    static uintptr_t address_of(const std::vector<View>& views, size_t page, size_t page_size) noexcept;
    // Applies fn(address, bytes) to runs of consecutive addresses.
    template <typename Fn>
    void for_each_run(const std::vector<uintptr_t>& sorted, Fn&& fn) const;

    memory::RegionTree& tree_;
    uffd::Userfaultfd& uffd_;
    size_t page_;
    EvictionPolicy policy_;
};

} // namespace faultline
