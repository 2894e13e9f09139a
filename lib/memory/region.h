// memory/region.h — a window onto a VMObject.
//
// A Region is an address range inside the arena with access rights, a name
// and flags, viewing its VMObject from an offset. Like SerenityOS's Region it
// remembers the most it may ever be allowed (max access) and whether it has
// ever been writable or executable, so W^X holds across its whole life and
// across splits.
//
// Regions are immutable in their range: splitting or shrinking one makes new
// Region objects and retires the old one once its in-flight faults end. That
// lets a handler thread use a Region without holding the tree lock.
#pragma once

#include "memory/fault_counters.h"
#include "memory/range_allocator.h"
#include "memory/vm_object.h"

#include <faultline/result.h>
#include <faultline/types.h>

#include <boost/intrusive/set.hpp>
#include <boost/smart_ptr/intrusive_ptr.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace faultline::memory {

class Region {
public:
    struct Params {
        Range range;
        boost::intrusive_ptr<VMObject> object;
        size_t object_offset = 0;
        std::string name;
        Access access = Access::None;
        Access max_access = Access::None;
        RegionFlags flags = RegionFlags::None;
        size_t guard_below = 0;     // bytes of PROT_NONE guard owned below base (stacks)
        bool committed = false;     // the region's size counts against the commit limit
        FaultAround readahead { 0, 0 }; // file regions: readahead limits (0 = the runtime's fault-around)
        uint64_t serial = 0;        // 0: a new one; else the serial of the region this one stands in for
    };
    static Result<std::unique_ptr<Region>> try_create(Params params);
    // A new region for [base, base+size) of this one: same object, shifted
    // offset, same name, access, flags and history. The guard page stays with
    // the piece at the bottom, unless `guard_below` says otherwise (a stack
    // piece that takes over a guard page below it).
    Result<std::unique_ptr<Region>> try_create_piece(uintptr_t base, size_t size, std::optional<size_t> guard_below = std::nullopt) const;
    // This region viewing `object` from `object_offset` instead (a rollback
    // makes a copy-on-write view view its snapshot's object): the same
    // serial, range, name, access, flags and history.
    Result<std::unique_ptr<Region>> try_create_view_of(boost::intrusive_ptr<VMObject> object, size_t object_offset) const;

    uintptr_t base() const noexcept { return range_.base; }
    size_t size() const noexcept { return range_.size; }
    uintptr_t end() const noexcept { return range_.end(); }
    Range range() const noexcept { return range_; }
    bool contains(uintptr_t a) const noexcept { return range_.contains(a); }
    size_t guard_below() const noexcept { return guard_below_; }
    // The address range the region owns in the arena, guard included.
    Range reserved_range() const noexcept { return { range_.base - guard_below_, range_.size + guard_below_ }; }

    const std::string& name() const noexcept { return name_; }
    // Unique for the life of the process: a region placed where another
    // was, or a piece of a split, is another region (a snapshot remembers
    // its source by it).
    uint64_t serial() const noexcept { return serial_; }
    Access access() const noexcept { return access_.load(std::memory_order_relaxed); }
    Access max_access() const noexcept { return max_access_; }
    RegionFlags flags() const noexcept { return flags_; }
    bool is_immutable() const noexcept { return has(flags_, RegionFlags::Immutable); }
    bool is_stack() const noexcept { return has(flags_, RegionFlags::Stack); }
    bool is_committed() const noexcept { return committed_; }
    bool has_been_writable() const noexcept { return has_been_writable_; }
    bool has_been_executable() const noexcept { return has_been_executable_; }
    VMObject& object() const noexcept { return *object_; }
    FaultAround readahead() const noexcept { return readahead_; }
    const boost::intrusive_ptr<VMObject>& object_ptr() const noexcept { return object_; }
    size_t object_offset() const noexcept { return object_offset_; }

    // Checks a change to `access` against max access and the W^X history.
    // EACCES when refused; EPERM when the region is immutable.
    Result<void> check_protect(Access access, bool allow_write_execute) const;
    // Records the new access. The mprotect(2) itself is the caller's.
    void set_access(Access access) noexcept;
    void set_name(std::string name) { name_ = std::move(name); }
    void set_immutable() noexcept { flags_ = flags_ | RegionFlags::Immutable; }

    // Validates a name the way PR_SET_VMA_ANON_NAME does (<= 80 bytes,
    // printable, none of []\$`), so that a name is accepted or refused the
    // same whether or not the kernel can show it.
    static Result<void> validate_name(std::string_view name);

    // Fault path: the context of a fault at `page` of this region.
    FaultContext fault_context(uintptr_t page, uffd::FaultKind kind, bool write, size_t page_size) const noexcept;
    // Fault path: resolves a fault through the object and counts the answer.
    Outcome handle_fault(const FaultContext&, PageSink&) noexcept;
    // Fault path: finishes a fault the object answered Pending.
    Outcome resume_fault(const FaultContext&, PageSink&, int64_t result) noexcept;
    // Fault path, after the faulting thread was woken: the object's
    // fault-around window.
    Outcome fault_around(const FaultContext&, PageSink&) noexcept;

    // In-flight faults. begin and end are called under the tree lock
    // (shared) by the handler, so a region removed from the tree gets no new
    // ones; the remover then waits for the count to reach zero before it drops
    // pages or frees the Region (as SerenityOS's Region destructor waits on
    // its users). A fault answered Pending stays in flight until its
    // completion is handled, so unmap waits for it too. Use
    // RegionTree::release_after_fault/wait_for_faults_to_end, which add the
    // locking.
    void begin_fault() noexcept { in_flight_.fetch_add(1, std::memory_order_acq_rel); }
    void end_fault() noexcept;
    void wait_for_faults_to_end() noexcept;
    uint32_t faults_in_flight() const noexcept { return in_flight_.load(); }

    // The fault service delivered SIGBUS here: the range may hold a poison
    // marker or a SIGBUS mapping, so giving it back needs a fresh mapping.
    void note_sigbus() noexcept { sigbus_delivered_.store(true, std::memory_order_relaxed); }
    bool sigbus_delivered() const noexcept { return sigbus_delivered_.load(std::memory_order_relaxed); }

    const FaultCounters& counters() const noexcept { return counters_; }
    uint64_t zero_faults() const noexcept { return counters_.faults(FillKind::Zero); }
    uint64_t pages_installed() const noexcept { return counters_.pages_installed(); }
    // Gives `pieces` (which replace `from` after a split) `from`'s counters,
    // shared by the populated pages each piece holds: the faults of a
    // region stay with the pages they brought in, as far as the runtime can
    // tell. Counters are not kept per page; this is the honest estimate.
    static void share_counters(const Region& from, Region* const* pieces, size_t count) noexcept;

    boost::intrusive::set_member_hook<> tree_hook;

private:
    explicit Region(Params&& params);

    Range range_;
    uint64_t serial_;
    boost::intrusive_ptr<VMObject> object_;
    size_t object_offset_;
    std::string name_;
    // Atomic because the SIGBUS fallback on a handler thread reads it while
    // an API thread may change it.
    std::atomic<Access> access_;
    Access max_access_;
    RegionFlags flags_;
    size_t guard_below_;
    bool committed_;
    FaultAround readahead_;
    bool has_been_writable_ = false;
    bool has_been_executable_ = false;

    std::atomic<uint32_t> in_flight_ { 0 };
    std::atomic<bool> retiring_ { false };
    std::atomic<bool> sigbus_delivered_ { false };
    FaultCounters counters_;
};

} // namespace faultline::memory
