// core/runtime_core.h — everything a Runtime is: the userfaultfd, the arena,
// the region tree, the fault handler and commit accounting.
//
// Locks, in the order they are taken (docs/design.md):
//   1. api_lock_   serialises structural changes and statistics on API
//                  threads; may be held across system calls and across the
//                  wait for a retired region's faults to end.
//   2. the tree's shared_mutex: exclusive for each insert/remove/placement,
//                  never across a system call; handler threads take it shared
//                  for one lookup.
// Handler threads take only (2). Nothing is held across I/O.
#pragma once

#include "fault/fault_handler.h"
#include "memory/arena.h"
#include "memory/region_tree.h"
#include "os/features.h"
#include "os/pagemap.h"
#include "os/userfaultfd.h"

#include <faultline/runtime.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace faultline {

class RuntimeCore {
public:
    static Result<std::unique_ptr<RuntimeCore>> try_create(Config config);
    ~RuntimeCore();

    Result<void*> map_anonymous(const MapOptions& options);
    Result<void> unmap(uintptr_t address, size_t size);
    Result<void> protect(uintptr_t address, size_t size, Access access);
    Result<void> set_name(uintptr_t address, size_t size, std::string_view name);
    Result<void> make_immutable(uintptr_t address, size_t size);
    Result<void> discard(uintptr_t address, size_t size);

    Result<RegionStats> region_stats(uintptr_t address) const;
    std::vector<RegionStats> regions() const;
    RuntimeStats stats() const;
    std::string to_json() const;

    uintptr_t arena_base() const { return arena_.base(); }
    size_t arena_size() const { return arena_.size(); }
    const os::FeatureSet& features() const { return features_; }
    bool user_mode_only() const { return uffd_.user_mode_only(); }
    const Config& config() const { return config_; }
    size_t page_size() const { return page_; }

private:
    RuntimeCore(Config config, os::Userfaultfd uffd, memory::Arena arena, os::FeatureSet features, size_t commit_limit);

    // Checks alignment, size and overflow, and that the range lies in the
    // arena. EINVAL otherwise.
    Result<void> validate_range(uintptr_t address, size_t size) const;
    // The regions covering [address, address+size) with no hole (ENOENT if
    // there is one), none immutable unless `allow_immutable` (EPERM).
    Result<std::vector<memory::Region*>> covering_regions(uintptr_t address, size_t size, bool allow_immutable) const;
    // Splits regions at `address` and `address + size` so that the range is
    // covered by whole regions; returns those. Caller holds api_lock_.
    Result<std::vector<memory::Region*>> isolate(uintptr_t address, size_t size);
    // Replaces `old` by `pieces` in the tree, waits for old's faults to end,
    // and deletes it. Caller holds api_lock_.
    void replace_region(memory::Region& old, std::vector<std::unique_ptr<memory::Region>> pieces);

    Result<void> charge(size_t bytes);
    void uncharge(size_t bytes);

    RegionStats stats_for(const memory::Region& region, const os::Pagemap* pagemap) const;

    Config config_;
    size_t page_;
    os::Userfaultfd uffd_;
    memory::Arena arena_;
    os::FeatureSet features_;
    memory::RegionTree tree_;
    std::unique_ptr<fault::FaultHandler> handler_;
    mutable std::mutex api_lock_;
    std::atomic<size_t> committed_ { 0 };
    size_t commit_limit_;
};

} // namespace faultline
