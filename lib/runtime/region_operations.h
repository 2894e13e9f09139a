// runtime/region_operations.h — the preamble every structural call shares.
//
// unmap, protect, set_name, make_immutable and discard all start the same
// way: validate the range (alignment, overflow, inside the arena), find the
// regions covering it with no hole (ENOENT), refuse immutable ones (EPERM),
// let the call check each region (EACCES...), and only then split the
// regions cut by the range so that it is covered by whole regions. Written
// once here, so that a failing check changes nothing.
//
// Callers hold the runtime's API lock; this class takes the tree lock
// itself, exclusively for each change and never across a system call.
#pragma once

#include "memory/arena.h"
#include "memory/region_tree.h"
#include "support/try.h"

#include <faultline/result.h>

#include <memory>
#include <vector>

namespace faultline {

class RegionOperations {
public:
    RegionOperations(memory::RegionTree& tree, const memory::Arena& arena, size_t page_size) noexcept
        : tree_(tree)
        , arena_(arena)
        , page_(page_size)
    {
    }

    // EINVAL unless [address, address+size) is non-empty, page-aligned, does
    // not overflow and lies in the arena.
    Result<void> validate_range(uintptr_t address, size_t size) const noexcept;

    struct Cover {
        bool allow_immutable = false;
    };
    // The regions covering the range with no hole (ENOENT if there is one),
    // none immutable unless allowed (EPERM).
    Result<std::vector<memory::Region*>> covering(uintptr_t address, size_t size, Cover cover) const;

    // Splits regions at `address` and `address + size` so that the range is
    // covered by whole regions; returns those.
    Result<std::vector<memory::Region*>> isolate(uintptr_t address, size_t size);

    // validate -> covering -> check(region) for each -> isolate.
    template <typename Check>
    Result<std::vector<memory::Region*>> prepare(uintptr_t address, size_t size, Cover cover, Check&& check)
    {
        TRY(validate_range(address, size));
        for (memory::Region* r : TRY(covering(address, size, cover)))
            TRY(check(*r));
        return isolate(address, size);
    }
    Result<std::vector<memory::Region*>> prepare(uintptr_t address, size_t size)
    {
        return prepare(address, size, Cover { .allow_immutable = false }, [](memory::Region&) -> Result<void> { return {}; });
    }

    // Replaces `old` by `pieces` in the tree, shares its counters among
    // them, waits for its faults to end, and deletes it.
    void replace(memory::Region& old, std::vector<std::unique_ptr<memory::Region>> pieces);

    memory::Region* find(uintptr_t address) const;

    // mprotect(2) changes the mappings of a range one after the other and
    // stops at the first it cannot change (ENOMEM: splitting it would pass
    // vm.max_map_count), leaving the mappings before it changed. After such
    // a failure this puts the regions' own access back over the range, so
    // that a refused unmap or protect changes nothing. Adjacent regions with
    // the same access are restored in one call: the failed call may have
    // merged their mappings, and restoring piece by piece would need splits.
    void restore_access(const std::vector<memory::Region*>& regions, uintptr_t address, size_t size) const noexcept;

private:
    memory::RegionTree& tree_;
    const memory::Arena& arena_;
    size_t page_;
};

} // namespace faultline
