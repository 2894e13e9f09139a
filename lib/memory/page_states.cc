#include "memory/page_states.h"

#include "memory/lazy_table.h"

#include <sys/mman.h>
#include <unistd.h>

namespace faultline::memory {

Result<PageStates> PageStates::create(size_t pages) noexcept
{
    static_assert(sizeof(std::atomic<uint8_t>) == 1 && sizeof(std::atomic<uint64_t>) == 8);
    if (pages == 0)
        return fail(EINVAL, "page-state table of zero pages");
    const size_t words = (pages + kBlockPages * 64 - 1) / (kBlockPages * 64);
    auto* states = map_lazy_table<std::atomic<uint8_t>>(pages);
    if (!states)
        return fail(ENOMEM, "cannot reserve the page-state table");
    auto* summary = map_lazy_table<std::atomic<uint64_t>>(words * sizeof(uint64_t));
    if (!summary) {
        munmap(states, pages);
        return fail(ENOMEM, "cannot reserve the page-state summary");
    }
    return PageStates(states, summary, pages);
}

PageStates::PageStates(PageStates&& o) noexcept
    : states_(o.states_)
    , summary_(o.summary_)
    , pages_(o.pages_)
{
    o.states_ = nullptr;
    o.summary_ = nullptr;
    o.pages_ = 0;
}

PageStates::~PageStates()
{
    if (states_)
        munmap(states_, pages_);
    if (summary_)
        munmap(summary_, summary_words() * sizeof(uint64_t));
}

void PageStates::mark_blocks(size_t first, size_t count) noexcept
{
    const size_t last_block = (first + count - 1) / kBlockPages;
    for (size_t block = first / kBlockPages; block <= last_block; ++block) {
        const uint64_t bit = uint64_t(1) << (block % 64);
        // Test before setting: the bit is set once per block and read on
        // every fault-around, so the common case stays a shared cache line.
        if (!(summary_[block / 64].load(std::memory_order_relaxed) & bit))
            summary_[block / 64].fetch_or(bit, std::memory_order_relaxed);
    }
}

bool PageStates::clip(size_t first, size_t& count) const noexcept
{
    if (first >= pages_ || count == 0)
        return false;
    if (count > pages_ - first)
        count = pages_ - first;
    return true;
}

void PageStates::populate(size_t first, size_t count, PageState to) noexcept
{
    if (!clip(first, count))
        return;
    // The block is marked before the states change, so a reader that finds
    // a populated state always finds its block marked.
    mark_blocks(first, count);
    for (size_t i = first; i < first + count; ++i) {
        uint8_t expected = uint8_t(PageState::Unpopulated);
        states_[i].compare_exchange_strong(expected, uint8_t(to), std::memory_order_relaxed);
    }
}

void PageStates::set(size_t first, size_t count, PageState to) noexcept
{
    if (!clip(first, count))
        return;
    if (to != PageState::Unpopulated)
        mark_blocks(first, count);
    for (size_t i = first; i < first + count; ++i)
        states_[i].store(uint8_t(to), std::memory_order_relaxed);
}

bool PageStates::claim(size_t page) noexcept
{
    if (page >= pages_)
        return false;
    mark_blocks(page, 1);
    uint8_t expected = uint8_t(PageState::Unpopulated);
    return states_[page].compare_exchange_strong(expected, uint8_t(PageState::Filling), std::memory_order_acq_rel);
}

void PageStates::settle(size_t first, size_t count, PageState to) noexcept
{
    if (!clip(first, count))
        return;
    if (to != PageState::Unpopulated)
        mark_blocks(first, count);
    for (size_t i = first; i < first + count; ++i)
        states_[i].store(uint8_t(to), std::memory_order_release);
}

void PageStates::forget(size_t first, size_t count) noexcept
{
    if (!clip(first, count))
        return;
    const size_t end = first + count;
    const size_t state_page = size_t(sysconf(_SC_PAGESIZE));
    for_each_marked_span(first, count, [&](size_t at, size_t n) {
        const size_t block = at / kBlockPages;
        const bool whole = at % kBlockPages == 0 && (n == kBlockPages || at + n == pages_);
        if (whole && kBlockPages % state_page == 0) {
            // Give the block's state memory back and unmark it: a later
            // walk skips it again.
            madvise(&states_[at], (n + state_page - 1) / state_page * state_page, MADV_DONTNEED);
            summary_[block / 64].fetch_and(~(uint64_t(1) << (block % 64)), std::memory_order_relaxed);
            return;
        }
        for (size_t i = at; i < at + n && i < end; ++i)
            states_[i].store(uint8_t(PageState::Unpopulated), std::memory_order_relaxed);
    });
}

size_t PageStates::count_populated(size_t first, size_t count) const noexcept
{
    if (first >= pages_)
        return 0;
    if (count > pages_ - first)
        count = pages_ - first;
    size_t n = 0;
    for_each_marked_span(first, count, [&](size_t at, size_t len) {
        for (size_t i = at; i < at + len; ++i)
            n += populated(i);
    });
    return n;
}

size_t PageStates::next_marked_start(size_t from, size_t end) const noexcept
{
    size_t block = from / kBlockPages;
    const size_t last_block = end == 0 ? 0 : (end - 1) / kBlockPages;
    while (block <= last_block && from < end) {
        uint64_t word = summary_[block / 64].load(std::memory_order_relaxed) >> (block % 64);
        if (word) {
            block += size_t(__builtin_ctzll(word));
            size_t start = block * kBlockPages;
            return start < from ? from : start < end ? start : end;
        }
        // Nothing marked in the rest of this word: jump to the next word.
        block = (block / 64 + 1) * 64;
    }
    return end;
}

size_t PageStates::populated_run_below(size_t page, size_t floor, size_t limit) const noexcept
{
    size_t n = 0;
    while (n < limit && page > floor + n && populated(page - n - 1))
        ++n;
    return n;
}

size_t PageStates::populated_run_above(size_t page, size_t ceiling, size_t limit) const noexcept
{
    size_t n = 0;
    while (n < limit && page + n + 1 < ceiling && populated(page + n + 1))
        ++n;
    return n;
}

} // namespace faultline::memory
