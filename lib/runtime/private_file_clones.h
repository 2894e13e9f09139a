// runtime/private_file_clones.h — clones, snapshots and rollbacks of private
// file regions.
//
// A private file region is already one level of copy-on-write: it maps the
// file's cache (a memfd) MAP_PRIVATE, so its clean pages are the cache's and
// each page it wrote is a private copy the kernel made — its shadow over the
// file object. A clone is one more private region of the same file at the
// same offset, served by the fault service like any other (so pages nobody
// read yet are read from the file once, into the shared cache), plus a copy
// of the source's shadow: its written pages, found in the page tables
// (anonymous pages, PAGEMAP_SCAN), are installed in the clone with
// UFFDIO_COPY. The file never changes; pages neither side wrote stay shared
// through the cache; the cost is the pages the source wrote, not its size.
//
// Unlike a clonable anonymous region's frozen memfd, the cache is the file's
// live view: a shared region of the same file that writes a page changes it
// in every private view that has no copy of its own — clones and snapshots
// included, as mmap(2)'s MAP_PRIVATE allows (docs/cow.md says so).
//
// Rollback drops the region's written pages the snapshot has not written
// (MADV_DONTNEED: they read the cache again) and copies the snapshot's in,
// over the region's own: time in the pages both wrote, never the size.
//
// Callers hold the runtime's API lock.
#pragma once

#include "memory/objects/private_inode_vm_object.h"
#include "memory/region.h"
#include "runtime/mapper.h"
#include "runtime/page_copies.h"

#include <faultline/result.h>

#include <string>

namespace faultline {

class PrivateFileClones {
public:
    PrivateFileClones(Mapper& mapper, PageCopies& copies) noexcept
        : mapper_(mapper)
        , copies_(copies)
    {
    }

    // A new private region of `source`'s file holding what `source` holds
    // now; read-only for a snapshot.
    Result<void*> clone(memory::Region& source, const std::string& name, bool read_only);
    // `region` holds what `snapshot` (a region of the same file at the same
    // offset and size) holds.
    Result<void> rollback(memory::Region& region, const memory::Region& snapshot);

private:
    Mapper& mapper_;
    PageCopies& copies_;
};

} // namespace faultline
