// runtime/page_copies.h — copying the pages a private region wrote into
// another region, and dropping them: what clones, snapshots and rollbacks of
// private file regions and purgeable regions are made of.
//
// A private region's written pages are its anonymous pages: present or
// swapped and not of a file (os::Pagemap::next_anonymous_run, PAGEMAP_SCAN
// where the kernel has it). Copies go in with UFFDIO_COPY, which installs a
// page in one step; where the target already has a page there (its own,
// which a rollback overwrites, or one a reader made appear first), the bytes
// are written through the mapping by the kernel (process_vm_writev) — never
// a window in which the page shows something else.
//
// Callers hold the runtime's API lock; the target region is registered with
// `uffd`.
#pragma once

#include "memory/region.h"
#include "os/features.h"
#include "uffd/userfaultfd.h"

#include <faultline/result.h>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace faultline {

class PageCopies {
public:
    PageCopies(uffd::Userfaultfd& uffd, const os::FeatureSet& features, size_t page_size) noexcept
        : uffd_(uffd)
        , features_(features)
        , page_(page_size)
    {
    }

    // Installs a copy of every written page of `from` at the same offset of
    // the region at `to`. A write racing the copy may or may not be in it,
    // as with fork(). With `copyable`, only the pages (indices in `from`)
    // it says yes to.
    Result<void> copy_written(const memory::Region& from, uintptr_t to, const std::function<bool(size_t)>& copyable = {});
    // Drops every written page of `region` (the next touch reads what lies
    // under: the file, or zeros) but those `except` (a region of the same
    // size, may be null) has written at the same offset.
    Result<void> drop_written(const memory::Region& region, const memory::Region* except);

private:
    // Writes one page at `to` through the mapping; false if it could not.
    // Installs the page at `from` (a buffer of ours) at `to`: UFFDIO_COPY,
    // or written through the mapping where a page is there already, or that
    // page dropped and the copy tried again.
    Result<void> install_copy(uintptr_t to, const char* from) const;
    bool write_page(uintptr_t to, const char* from) const noexcept;

    uffd::Userfaultfd& uffd_;
    const os::FeatureSet& features_;
    size_t page_;
};

} // namespace faultline
