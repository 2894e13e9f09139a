// runtime/mapper.h — puts regions into the arena and takes them out.
//
// map: validate the options, place the range (a stack's guard page below
// it), make it accessible — arena memory changed by mprotect, or the
// object's memfd mapped over it with its own registration — register it
// for the modes the object needs, name it, seal it if immutable, and insert
// the Region. unmap: the order that keeps every installed page from
// outliving the region (docs/design.md, "Lifetime").
//
// Callers hold the runtime's API lock.
#pragma once

#include "memory/arena.h"
#include "memory/region_tree.h"
#include "memory/vm_object.h"
#include "os/features.h"
#include "runtime/commit_ledger.h"
#include "runtime/region_operations.h"
#include "uffd/userfaultfd.h"

#include <faultline/result.h>
#include <faultline/types.h>

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include <functional>

namespace faultline {

class Mapper {
public:
    Mapper(uffd::Userfaultfd& uffd, memory::Arena& arena, memory::RegionTree& tree, RegionOperations& ops,
        CommitLedger& ledger, const os::FeatureSet& features, size_t page_size, bool allow_write_execute) noexcept
        : uffd_(uffd)
        , arena_(arena)
        , tree_(tree)
        , ops_(ops)
        , ledger_(ledger)
        , features_(features)
        , page_(page_size)
        , allow_write_execute_(allow_write_execute)
    {
    }

    // EINVAL/EACCES/ENOMEM/EOPNOTSUPP for options no object could satisfy.
    Result<void> validate(const MapOptions& options) const noexcept;
    // Maps a region viewing `object` from `object_offset` (the object holds
    // at least that plus options.size). `committed`: the caller charged
    // options.size to the ledger; the region gives it back when unmapped.
    // `readahead`: file regions' readahead limits.
    Result<void*> map(const MapOptions& options, boost::intrusive_ptr<memory::VMObject> object, bool committed,
        size_t object_offset = 0, memory::FaultAround readahead = { 0, 0 });
    Result<void> unmap(uintptr_t address, size_t size);
    // The userfaultfd for objects that track writes asynchronously.
    void set_async_uffd(uffd::Userfaultfd* uffd) noexcept { async_uffd_ = uffd; }
    // Called for every region unmap retires, once its faults have ended and
    // before its range is given back (file regions write back there).
    void on_retire(std::function<void(memory::Region&)> hook) { on_retire_ = std::move(hook); }
    // Registers a region's range with the userfaultfd again (a view put back
    // after a failed copy-on-write freeze). False on failure.
    bool register_view(uintptr_t base, size_t size, uffd::Mode modes) noexcept { return bool(uffd_.register_range(base, size, modes)); }
    // Unregisters a region's range (a view about to be remapped: see
    // CowRegions::freeze). Faults waiting there are woken and retry.
    bool unregister_view(uintptr_t base, size_t size) noexcept { return bool(uffd_.unregister_range(base, size)); }


private:
    // Gives a retired region's range back to the arena.
    void give_back(memory::Region& region, memory::Range keep);

    uffd::Userfaultfd& uffd_;
    memory::Arena& arena_;
    memory::RegionTree& tree_;
    RegionOperations& ops_;
    CommitLedger& ledger_;
    const os::FeatureSet& features_;
    size_t page_;
    bool allow_write_execute_;
    std::function<void(memory::Region&)> on_retire_;
    uffd::Userfaultfd* async_uffd_ = nullptr;
};

} // namespace faultline
