// runtime/cow_regions.h — clones of clonable regions, the runtime's room for them.
//
// A region mapped with RegionFlags::Clonable views a CowVMObject: its pages
// live in a memfd (memory/objects/cow_vm_object.h). clone() of such a
// region:
//   - the first time, *freezes* the object: every view of it (the region
//     and any pieces of it) is remapped in place MAP_PRIVATE over the memfd,
//     and the clone is one more MAP_PRIVATE view: O(1) in the bytes, the
//     kernel's copy-on-write separates them, reads share the frozen pages
//     (the old page tables are moved aside and torn down by a thread of
//     their own: runtime/mapping_reaper.h);
//   - of a view that has not written since the freeze (a fresh clone, or
//     the original before it writes): one more view, O(1) again;
//   - of a view that has written since: a chain — the view's frozen objects
//     with a new layer holding a copy of the pages it wrote — or, past the
//     chain's limits, a flattened copy (runtime/cow_chains.h). The source
//     is not touched, so no write racing the clone can be lost; the copy
//     costs the pages written since the freeze (docs/cow.md).
// fork(): a pthread_atfork prepare handler freezes every live clonable
// object first, so a fork child inherits private views instead of sharing
// the pages both ways.
//
// Locks: the runtime's API lock (passed in); the commit charge is taken
// without it (PurgeableRegions::charge may purge).
#pragma once

#include "memory/objects/cow_vm_object.h"
#include "runtime/cow_chains.h"
#include "memory/region_tree.h"
#include "runtime/commit_ledger.h"
#include "runtime/mapper.h"
#include "runtime/mapping_reaper.h"
#include "runtime/private_file_clones.h"
#include "runtime/purgeable_regions.h"
#include "runtime/region_operations.h"

#include <faultline/result.h>

#include <mutex>
#include <unordered_map>
#include <string_view>

namespace faultline {

class CowRegions {
public:
    CowRegions(Mapper& mapper, RegionOperations& ops, memory::RegionTree& tree, PurgeableRegions& purgeable, CommitLedger& ledger,
        std::mutex& api_lock, uffd::Userfaultfd& uffd, const os::FeatureSet& features, size_t page_size) noexcept;
    ~CowRegions();
    CowRegions(const CowRegions&) = delete;
    CowRegions& operator=(const CowRegions&) = delete;

    // The clone of the region that starts at `address`, named `name` (empty:
    // the source's name). Clonable regions, and private file regions
    // (runtime/private_file_clones.h). ENOENT: no region there; EINVAL:
    // `address` is not the start of a region, or the region is neither
    // (map it with RegionFlags::Clonable); EPERM: the region is immutable (it cannot be
    // remapped); ENOMEM: the commit limit cannot cover the clone's worst
    // case (every page written), unless the source is NoReserve.
    Result<void*> clone(uintptr_t address, std::string_view name);
    // A read-only clone, remembered as a point-in-time view of the region
    // at `address` that rollback() can restore. Errors as clone().
    Result<void*> snapshot(uintptr_t address, std::string_view name);
    // Makes the region at `address` hold what `snapshot` holds. When the
    // region viewed the snapshot's frozen object and has only written pages
    // since, its written pages are dropped (time in the pages written);
    // otherwise it is remapped as a view of the snapshot's object. ENOENT:
    // no region at either address; EINVAL: an address is not the start of
    // a region, or `snapshot` is not a snapshot of this region (another's,
    // or the region was split or unmapped since); EPERM: immutable.
    Result<void> rollback(uintptr_t address, uintptr_t snapshot);

    // pthread_atfork prepare: freezes every live clonable object.
    void prepare_fork() noexcept;

private:
    // clone() and snapshot(): a new view of `address`'s contents, read-only
    // for a snapshot, with the serials of the source and of the view.
    struct View {
        void* base;
        uint64_t source;
        uint64_t view;
    };
    Result<View> make_view(uintptr_t address, std::string_view name, bool read_only);
    // make_view() of a purgeable region: a new purgeable region holding a
    // copy of the source's resident pages (API lock not held).
    Result<View> purgeable_view(uintptr_t address, std::string_view name, bool read_only);
    // Remaps every view of `object` MAP_PRIVATE (API lock held).
    Result<void> freeze(memory::CowVMObject& object);
    Mapper& mapper_;
    RegionOperations& ops_;
    memory::RegionTree& tree_;
    PurgeableRegions& purgeable_;
    CommitLedger& ledger_;
    std::mutex& api_lock_;
    size_t page_;
    // Snapshots by their region's serial: the serial of their source.
    // Entries of snapshots that are gone are dropped at the next snapshot().
    struct Snapshot {
        uintptr_t base;
        uint64_t source;
    };
    std::unordered_map<uint64_t, Snapshot> snapshots_;
    PageCopies copies_;
    CowChains chains_;
    PrivateFileClones private_files_;
    // Tears down the page tables a freeze moved aside (declared last:
    // destroyed first, it unmaps what is still queued).
    MappingReaper reaper_;
};

} // namespace faultline
