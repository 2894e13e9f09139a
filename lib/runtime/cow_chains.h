// runtime/cow_chains.h — what a clone of a written copy-on-write view is
// made of: a chain of layers over the frozen base, or a flattened copy.
//
// A view of a frozen object (memory/objects/cow_vm_object.h) that has
// written pages since the freeze holds them as the kernel's private copies;
// no other mapping can reach those. Its clone therefore gets a *chain*: the
// view's own chain (the base and its layers, shared) with a new top layer
// holding a copy of the pages the view wrote — found in the page tables,
// copied once through the view into a sparse memfd. Cost: the pages written
// since the freeze, not the region's data; everything below stays shared
// with every view (memory/cow_chain_plan.h says which layers the chain keeps
// and when it is flattened instead).
//
// The source is never remapped: a thread of the program may be writing it,
// and a remap would lose a write made between the copy and the remap. So
// the source keeps its written pages as its own, and the layer holds a
// second copy of them (the price of never losing a write; a write racing
// the clone may or may not be in it, as with fork()).
//
// Callers hold the runtime's API lock.
#pragma once

#include "memory/cow_chain_plan.h"
#include "memory/objects/cow_vm_object.h"
#include "memory/region.h"
#include "os/features.h"

#include <faultline/result.h>

#include <boost/intrusive_ptr.hpp>

#include <cstddef>
#include <sys/types.h>
#include <vector>

namespace faultline {

class CowChains {
public:
    CowChains(const os::FeatureSet& features, size_t page_size, memory::ChainLimits limits = {}) noexcept
        : features_(features)
        , page_(page_size)
        , limits_(limits)
    {
    }

    // True when `view` (of a frozen object) has pages of its own: written
    // since the freeze, resident or swapped by the kernel.
    Result<bool> has_own_pages(const memory::Region& view) const;
    // The object a clone of `source` (a view with pages of its own) views,
    // at the same object offset as the source: a chain with a new layer of
    // those pages, or — past the limits, or when views of the source's
    // object had ranges discarded — a flattened copy (then at offset 0;
    // `*offset` says which).
    Result<boost::intrusive_ptr<memory::CowVMObject>> clone_of_written(memory::Region& source, size_t* offset);
    // A new frozen base holding `source`'s current contents (depth 1).
    Result<boost::intrusive_ptr<memory::CowVMObject>> copy_of(const memory::Region& source);

private:
    // The runs (object page numbers) of `view`'s own pages.
    Result<std::vector<memory::PageRun>> own_runs(const memory::Region& view) const;
    // Copies `len` bytes read at `from` (a view's mapping) into `fd` at `at`.
    Result<void> copy_pages(const char* from, int fd, off_t at, size_t len) const;
    // The same for a mapping the program made unreadable: through
    // /proc/self/mem and a bounce buffer.
    Result<void> copy_unreadable(const char* from, int fd, off_t at, size_t len) const;

    const os::FeatureSet& features_;
    size_t page_;
    memory::ChainLimits limits_;
};

} // namespace faultline
