// runtime/region_statistics.h — what the page tables say about regions.
//
// Statistics are taken in two steps so that a long scan never blocks the
// runtime's structural calls: under the API lock, snapshot() copies what the
// Region knows (name, access, flags, counters) and takes a reference on its
// object; then, with no lock held, measure() reads the page tables. The one
// pagemap loop here serves region_stats(), regions() and the JSON report's
// per-page map.
//
// Its cost follows the populated pages, not the size of the region: with
// PAGEMAP_SCAN (Linux 6.7) the kernel walks only populated page tables;
// without it, the object's page states say which blocks can hold pages.
// A region unmapped between the two steps is measured over whatever then
// lies in its range: statistics are a snapshot, never a lock.
#pragma once

#include "memory/region.h"
#include "memory/vm_object.h"

#include <faultline/types.h>

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include <string>

namespace faultline {

struct RegionSnapshot {
    RegionStats stats;
    boost::intrusive_ptr<memory::VMObject> object;
    size_t object_offset = 0;
    bool file = false; // a file region: its memfd pages are the file's, clean unless dirty
    bool cow_view = false; // a view of a frozen copy-on-write object: the kernel serves it
};

class RegionStatistics {
public:
    // The per-page map has at most this many characters.
    static constexpr size_t kMapChars = 1024;

    RegionStatistics(size_t page_size, bool use_pagemap_scan) noexcept
        : page_(page_size)
        , use_scan_(use_pagemap_scan)
    {
    }

    // Under the API lock (or the tree lock): the Region's own fields.
    static RegionSnapshot snapshot(const memory::Region& region);

    // Fills resident / dirty / zero-mapped / cow figures. With `page_map`,
    // also the JSON report's map: one character per page ('.' absent, 'z'
    // zero page, 'D' private, 'c' shared copy-on-write), or per group of
    // pages for regions over kMapChars pages, showing the group's strongest
    // state (D > c > z > .). Returns the pages per character.
    size_t measure(RegionSnapshot& region, std::string* page_map) const;

private:
    size_t page_;
    bool use_scan_;
};

} // namespace faultline
