// os/pagemap.h — reads /proc/self/pagemap to see what the kernel has mapped.
//
// Statistics (resident, dirty, shared-with-fork) come from the page tables,
// read on demand, instead of being tracked on the fault path: the kernel
// resolves some faults itself (copy-on-write of the zero page) and only the
// page tables know about those.
//
// Two ways to read: one 64-bit entry per page (read()), and, where the
// kernel has it (6.7), the PAGEMAP_SCAN ioctl (scan()), which walks only
// populated page tables and returns runs of pages by category — its cost
// follows the populated pages, not the size of the range.
#pragma once

#include "os/uffd_compat.h"

#include <faultline/result.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace faultline::os {

class Pagemap {
public:
    // `learn_zero_pfn`: probe for the zero page's PFN (classify() needs it;
    // a fork child remapping its file regions does not).
    static Result<Pagemap> open(bool learn_zero_pfn = true);
    Pagemap(Pagemap&&) noexcept;
    Pagemap& operator=(Pagemap&&) = delete;
    ~Pagemap();

    // One 64-bit entry per page of [addr, addr + pages * page size) into
    // `out` (which holds `pages` entries).
    Result<void> read(uintptr_t addr, size_t pages, uint64_t* out) const;

    // PAGEMAP_SCAN over [start, end): runs of pages that are present or
    // swapped, with their PAGE_IS_PRESENT / PAGE_IS_PFNZERO /
    // PAGE_IS_SWAPPED categories, at most `max` runs into `out`. Returns the
    // number of runs; `*walk_end` is where the walk stopped (== end when the
    // whole range was seen).
    Result<size_t> scan(uintptr_t start, uintptr_t end, page_region* out, size_t max, uintptr_t* walk_end) const;
    // PAGEMAP_SCAN for pages that are present or swapped and not of a file:
    // in a private file mapping, the pages the process copied on write
    // (anonymous), not the file's pages it maps. Returns the runs found, as
    // scan().
    Result<size_t> scan_anonymous(uintptr_t start, uintptr_t end, page_region* out, size_t max, uintptr_t* walk_end) const;
    // The first run of anonymous pages (present or swapped, not of a file)
    // in [start, end), as addresses; {end, end} when there is none. With
    // `scan`, one PAGEMAP_SCAN; without, entries read 512 at a time (on the
    // stack: usable in a fork child).
    Result<std::pair<uintptr_t, uintptr_t>> next_anonymous_run(uintptr_t start, uintptr_t end, bool scan) const noexcept;
    // True when this kernel answers PAGEMAP_SCAN.
    static bool scan_available() noexcept;
    // PAGEMAP_SCAN for pages written since they were last protected, in
    // ranges registered for asynchronous write-protect (UFFD_FEATURE_
    // WP_ASYNC). With `reprotect`, the pages found are write-protected again
    // in the same step (PM_SCAN_WP_MATCHING): a write after it marks its
    // page written again. Returns the runs found, as scan().
    Result<size_t> scan_written(uintptr_t start, uintptr_t end, bool reprotect, page_region* out, size_t max,
        uintptr_t* walk_end) const;

    static bool present(uint64_t e) { return e & (uint64_t(1) << 63); }
    static bool swapped(uint64_t e) { return e & (uint64_t(1) << 62); }
    static bool exclusive(uint64_t e) { return e & (uint64_t(1) << 56); }
    // PM_UFFD_WP (5.13): the page is write-protected by a userfaultfd.
    static bool write_protected(uint64_t e) { return e & (uint64_t(1) << 57); }
    static bool file_or_shared(uint64_t e) { return e & (uint64_t(1) << 61); }
    static uint64_t pfn(uint64_t e) { return e & ((uint64_t(1) << 55) - 1); }

    enum class Kind : char { None = '.', Zero = 'z', Private = 'D', Shared = 'c' };
    // Classifies a present entry. A page of a memfd (shared region) is
    // always a real page: Private here means "resident, not the zero
    // page". For private anonymous memory: the shared zero page is never
    // "exclusively mapped"; neither is a page shared with a fork child. They
    // are told apart by PFN where this process may see PFNs (CAP_SYS_ADMIN)
    // and the zero page's PFN is known, else by `installed_zero` (the
    // runtime mapped the zero page there).
    Kind classify(uint64_t entry, bool installed_zero) const;
    // 0 when unknown (PFNs hidden, or no entry proved to be the zero page).
    uint64_t zero_pfn() const { return zero_pfn_; }

    // The zero page's PFN if `entry` can only be the zero page, else 0.
    // Only an entry that is present, not exclusively mapped and not of a
    // file qualifies: on some machines a read fault on fresh anonymous
    // memory allocates a private zeroed page instead of mapping the zero
    // page, and trusting any present entry would learn that page's PFN.
    static uint64_t zero_pfn_from(uint64_t entry);

private:
    explicit Pagemap(int fd) : fd_(fd) {}
    int fd_ = -1;
    uint64_t zero_pfn_ = 0;
};

} // namespace faultline::os
