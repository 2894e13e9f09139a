#include "memory/objects/fault_around.h"

#include <algorithm>

namespace faultline::memory {

Window choose_fault_around_window(const PageStates& states, size_t page, size_t floor, size_t ceiling, FaultAround around) noexcept
{
    const size_t min = std::max<size_t>(1, around.min_pages);
    const size_t max = std::max<size_t>(min, around.max_pages);
    if (max > min) {
        const size_t below = states.populated_run_below(page, floor, max);
        if (below >= min) {
            const size_t size = std::min(max, 2 * below);
            return { page, std::min(size, ceiling - page), true };
        }
        const size_t above = states.populated_run_above(page, ceiling, max);
        if (above >= min) {
            const size_t size = std::min(max, 2 * above);
            const size_t first = page + 1 - std::min(size, page + 1 - floor);
            return { first, page + 1 - first, true };
        }
        // No stream, but a dense neighbourhood: when half of the aligned
        // block of `max` pages around the fault is populated already (a
        // random toucher filling a region), the rest of the block is
        // likely to be wanted too. A sparse toucher whose windows cover
        // half its stride never gets there before its last touch.
        size_t block = std::max(page - page % max, floor);
        size_t block_end = std::min(page - page % max + max, ceiling);
        size_t populated = 0;
        for (size_t i = block; i < block_end; ++i)
            populated += states.populated(i);
        if (2 * populated >= block_end - block)
            return { block, block_end - block, false };
    }
    // The aligned block of `min` pages around the fault, held to the region
    // (the block is aligned in object pages, which is what pieces of one
    // object share).
    size_t first = page - page % min;
    size_t end = first + min;
    first = std::max(first, floor);
    end = std::min(end, ceiling);
    return { first, end - first, false };
}

} // namespace faultline::memory
