// runtime/file_fork_plan.h — how a fork child's file regions stop depending
// on the parent's cache.
//
// A file region maps its file's cache, a memfd the parent fills and drops
// pages from (eviction punches them out). A fork child shares that memfd
// but has no fault service: a page the parent never read reads zeros in the
// child, and so does one the parent drops after the fork — zeros where the
// file has data. So the child must not view the cache. Before the fork
// (the prepare handler, under the API lock, held until the fork returns)
// the parent writes every shared file's dirty pages back — the file then
// holds every byte the regions show — and records this plan; in the child,
// apply() maps each region onto the file itself, as mmap(2) would have:
//
//   shared file region  -> MAP_SHARED of the file over the whole region;
//   private file region -> MAP_PRIVATE of the file over every page the
//                          parent had not copied on write (the copies are
//                          anonymous pages the child inherited: kept);
//   store region        -> no access (PROT_NONE): a store is served by the
//                          parent's threads only, and a signal is honest
//                          where its bytes cannot be had.
//
// Pages whose write-back failed at the fork are the cache's alone: those
// ("keep" runs) go on viewing the cache, which never drops a dirty page.
//
// apply() runs in the child of a possibly multi-threaded process: system
// calls only — no allocation, no lock, no logging library.
#pragma once

#include "os/pagemap.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace faultline {

class FileForkPlan {
public:
    enum class Kind : uint8_t { Shared, Private, Unavailable };
    struct Entry {
        uintptr_t base = 0;
        size_t size = 0;
        int prot = 0;
        Kind kind = Kind::Shared;
        int fd = -1;
        uint64_t offset = 0; // file offset of `base`
        // This entry's keep runs: keep_[keep_first, keep_first + keep_count).
        size_t keep_first = 0;
        size_t keep_count = 0;
    };
    // A run of file pages [first, end) that keeps viewing the cache.
    struct Run {
        uint64_t first = 0;
        uint64_t end = 0;
    };

    // Parent, before the fork.
    void clear() noexcept
    {
        entries_.clear();
        keep_.clear();
    }
    void set_scan(bool available) noexcept { scan_ = available; }
    // Adds a region; `keep` (its file's pages, sorted, disjoint) is clipped
    // to it.
    void add(Entry entry, size_t page_size, const std::vector<Run>& keep);
    bool empty() const noexcept { return entries_.empty(); }
    size_t size() const noexcept { return entries_.size(); }

    // Child, right after the fork. Returns the number of remaps that
    // failed (those pages keep viewing the cache).
    size_t apply(size_t page_size) const noexcept;

private:
    size_t apply_one(const Entry& e, size_t page_size, const os::Pagemap* pagemap) const noexcept;
    // The first run of anonymous pages (copied on write) at or after page
    // `from` of `e`, as page indices of `e`; {pages, pages} when none.
    Run next_anonymous(const Entry& e, size_t page_size, const os::Pagemap& pagemap, size_t from) const noexcept;
    std::vector<Entry> entries_;
    std::vector<Run> keep_;
    bool scan_ = false; // PAGEMAP_SCAN available
};

} // namespace faultline
