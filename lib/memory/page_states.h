// memory/page_states.h — what the runtime knows of each page of an object.
//
// One byte per page, in a MAP_NORESERVE mapping: the kernel provides zero
// pages lazily, so a huge noreserve object costs nothing until touched, and
// the fault path never allocates to record a state. Beside the bytes, a
// summary bitmap has one bit per block of kBlockPages pages (one page of
// state bytes), set once any page of the block is populated. Everything that
// walks an object (statistics, forgetting pages on unmap, counting pages on
// a split) walks the marked blocks only, so its cost follows the populated
// pages, not the size: a 4 TiB region with two resident pages costs two
// blocks, not a billion bytes.
//
// States are hints, written with relaxed atomics: a page may have changed in
// the kernel since (a zero-mapped page written is now a private page; only
// the page tables know). The fault path uses them to choose fault-around
// windows; statistics use them to know where to look.
#pragma once

#include <faultline/result.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace faultline::memory {

enum class PageState : uint8_t {
    Unpopulated = 0, // never installed, or dropped since
    ZeroMapped = 1,  // mapped to the shared zero page by a read fault
    Present = 2,     // a private page (or a page of the object's memfd) was installed
    // A handler thread has claimed the page and is filling it; it settles
    // the state and wakes the page's waiters when done (claim() / settle()).
    Filling = 3,
};

class PageStates {
public:
    static constexpr size_t kBlockPages = 4096;

    static Result<PageStates> create(size_t pages) noexcept;
    PageStates(PageStates&&) noexcept;
    PageStates& operator=(PageStates&&) = delete;
    PageStates(const PageStates&) = delete;
    ~PageStates();

    size_t size() const noexcept { return pages_; }

    // Acquire: a thread that sees a page Present also sees the bytes the
    // fill put there before settle() released it — a sync writing a page
    // back reads them on another thread than the one that read the file
    // (free on x86, where every load is an acquire).
    PageState get(size_t page) const noexcept
    {
        return PageState(states_[page].load(std::memory_order_acquire));
    }
    bool populated(size_t page) const noexcept { return get(page) != PageState::Unpopulated; }

    // Moves pages in [first, first+count) from Unpopulated to `to`; a page
    // another thread already recorded keeps its state. Fault path.
    void populate(size_t first, size_t count, PageState to) noexcept;
    // Sets pages to `to` whatever they were. Fault path.
    void set(size_t first, size_t count, PageState to) noexcept;
    // Unpopulated -> Filling for one page; false if it was not Unpopulated.
    // The claimer must settle() the page and then wake its waiters: a
    // fault on a Filling page is left to the claimer (release/acquire
    // order the state against those waits). Fault path.
    bool claim(size_t page) noexcept;
    // Ends a claim (or overrides any state) with `to`. Fault path.
    void settle(size_t first, size_t count, PageState to) noexcept;
    bool filling(size_t page) const noexcept
    {
        return PageState(states_[page].load(std::memory_order_acquire)) == PageState::Filling;
    }
    // Unpopulated whatever it was, returning what it was: the purger takes a
    // page out this way before dropping it, so that a fill racing the purge
    // either shows up in the old state or records itself again afterwards.
    PageState take(size_t page) noexcept
    {
        return PageState(states_[page].exchange(uint8_t(PageState::Unpopulated), std::memory_order_acq_rel));
    }
    // Marks pages Unpopulated. Whole blocks give their state memory back.
    void forget(size_t first, size_t count) noexcept;

    // Populated pages in [first, first+count), counted over marked blocks only.
    size_t count_populated(size_t first, size_t count) const noexcept;
    // Calls fn(first, count) for each marked block's share of
    // [first, first+count), in order. Statistics use it to read the page
    // tables where something may be.
    template <typename Fn>
    void for_each_marked_span(size_t first, size_t count, Fn&& fn) const
    {
        const size_t end = first + count;
        for (size_t at = first; at < end;) {
            const size_t block = at / kBlockPages;
            const size_t block_end = (block + 1) * kBlockPages < end ? (block + 1) * kBlockPages : end;
            if (block_marked(block))
                fn(at, block_end - at);
            at = next_marked_start(block_end, end);
        }
    }

    // Fault-around support: how many pages directly below `page` (down to
    // `floor`, at most `limit`) are populated, and directly above (up to
    // `ceiling`, exclusive).
    size_t populated_run_below(size_t page, size_t floor, size_t limit) const noexcept;
    size_t populated_run_above(size_t page, size_t ceiling, size_t limit) const noexcept;

    bool block_marked(size_t block) const noexcept
    {
        return (summary_[block / 64].load(std::memory_order_relaxed) >> (block % 64)) & 1;
    }

private:
    PageStates(std::atomic<uint8_t>* states, std::atomic<uint64_t>* summary, size_t pages) noexcept
        : states_(states)
        , summary_(summary)
        , pages_(pages)
    {
    }
    void mark_blocks(size_t first, size_t count) noexcept;
    // Holds [first, first+count) to the table; false when nothing is left.
    bool clip(size_t first, size_t& count) const noexcept;
    // The first page at or after `from` (below `end`) in a marked block, or
    // `end`: skips unmarked blocks 64 at a time.
    size_t next_marked_start(size_t from, size_t end) const noexcept;
    size_t summary_words() const noexcept { return (pages_ + kBlockPages * 64 - 1) / (kBlockPages * 64); }

    std::atomic<uint8_t>* states_ = nullptr;
    std::atomic<uint64_t>* summary_ = nullptr;
    size_t pages_ = 0;
};

} // namespace faultline::memory
