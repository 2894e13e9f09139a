// runtime/mapping_reaper.h — replaces a mapping in place and tears the old
// page tables down on a thread of its own.
//
// Freezing a clonable region remaps it from a shared to a private view of
// its memfd (docs/cow.md). Done with one mmap(MAP_FIXED), the call first
// tears down every page-table entry of the old mapping: about 31 ms for a
// fully mapped GiB, more than fork() takes to copy as many entries. The
// teardown does nothing the new view needs (the pages stay in the memfd),
// so it need not happen before the call returns: mremap(MREMAP_DONTUNMAP)
// moves the page tables, whole, to an address the kernel picks (about
// 0.2 ms per GiB), leaving the range mapped as before but empty; the new
// view is mapped over it at once, and this class's thread unmaps the moved
// tables afterwards. The work is the same; the caller does not wait for it.
//
// Moved tables hold the pages they map until unmapped (a frozen object's
// memory goes back to the system that much later, typically milliseconds).
// Across fork() nothing moved is inherited: the prepare handler waits for
// an unmap under way, and the child unmaps whatever is still queued (cheap
// there: a fork does not copy the page tables of shared mappings).
//
// Locks: one mutex, a leaf (nothing else is taken while holding it), held
// across fork() by the handlers.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace faultline {

class MappingReaper {
public:
    // `enabled`: the kernel moves page tables of shared mappings
    // (os::Feature::DontUnmap). When not, replace() tears down in the call.
    explicit MappingReaper(bool enabled) noexcept;
    // Unmaps everything still queued, then ends the thread.
    ~MappingReaper();
    MappingReaper(const MappingReaper&) = delete;
    MappingReaper& operator=(const MappingReaper&) = delete;

    // Maps `fd` (`type`: MAP_SHARED or MAP_PRIVATE) from `offset` over the
    // one mapping [addr, addr+len), keeping every byte the range shows (as
    // os::remap_fd_fixed_keeping_contents). A range registered with
    // userfaultfd has its entries moved one by one, ten times slower than
    // whole tables: unregister it first. 0 or -errno; on failure the old
    // mapping is still in place, with or without its page-table entries
    // (either way it shows the same bytes).
    int replace(uintptr_t addr, size_t len, int prot, int type, int fd, size_t offset) noexcept;

    // Whether replace() moves page tables aside at all.
    bool enabled() const noexcept { return enabled_; }
    // Waits until every moved range is unmapped.
    void drain() noexcept;
    // Bytes moved aside and not unmapped yet.
    size_t pending_bytes() const noexcept;
    // Ranges moved aside since creation (for tests: whether replace() moved).
    uint64_t moved() const noexcept;

private:
    struct Range {
        uintptr_t addr;
        size_t len;
    };
    void run() noexcept;
    // Queues a moved range, starting the thread if needed; false when
    // neither is possible (the caller unmaps it itself).
    bool enqueue(Range r) noexcept;

    static void prepare_fork_all() noexcept;
    static void parent_after_fork_all() noexcept;
    static void child_after_fork_all() noexcept;
    void prepare_fork() noexcept;
    void parent_after_fork() noexcept;
    void child_after_fork() noexcept;

    bool enabled_;
    mutable std::mutex lock_;
    // Rebuilt in a fork child, where their waiters did not come along.
    std::condition_variable wakeup_;
    std::condition_variable idle_;
    std::vector<Range> queue_;
    size_t pending_bytes_ = 0;
    uint64_t moved_ = 0;
    bool unmapping_ = false;
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace faultline
