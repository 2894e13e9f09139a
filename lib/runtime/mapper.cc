#include "runtime/mapper.h"

#include "os/virtual_memory.h"
#include "support/log.h"

#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <sys/mman.h>

namespace faultline {

using memory::Range;
using memory::Region;

namespace {

constexpr uint32_t kKnownFlags = uint32_t(RegionFlags::Shared) | uint32_t(RegionFlags::Stack)
    | uint32_t(RegionFlags::Immutable) | uint32_t(RegionFlags::Purgeable) | uint32_t(RegionFlags::NoReserve)
    | uint32_t(RegionFlags::Clonable);

// Runs `undo` on scope exit unless dismissed: every failure after a step
// that changed something takes that step back, so a failed map leaves
// nothing half-done.
template <typename Undo>
class Rollback {
public:
    explicit Rollback(Undo undo) : undo_(std::move(undo)) {}
    ~Rollback()
    {
        if (armed_)
            undo_();
    }
    void dismiss() { armed_ = false; }

private:
    Undo undo_;
    bool armed_ = true;
};

} // namespace

Result<void> Mapper::validate(const MapOptions& o) const noexcept
{
    if (o.size == 0)
        return fail(EINVAL, "size is zero");
    if (o.size % page_ != 0)
        return fail(EINVAL, "size must be a multiple of the page size");
    const size_t alignment = o.alignment ? o.alignment : page_;
    if (alignment < page_ || (alignment & (alignment - 1)) != 0)
        return fail(EINVAL, "alignment must be a power of two no smaller than the page size");
    if (uint8_t(o.access) & ~uint8_t(Access::ReadWriteExecute) || uint8_t(o.max_access) & ~uint8_t(Access::ReadWriteExecute))
        return fail(EINVAL, "unknown access bits");
    if (uint32_t(o.flags) & ~kKnownFlags)
        return fail(EINVAL, "unknown region flags");
    if (has(o.flags, RegionFlags::Clonable) && (has(o.flags, RegionFlags::Shared) || has(o.flags, RegionFlags::Stack) || has(o.flags, RegionFlags::Purgeable)))
        return fail(EINVAL, "a clonable region is private anonymous memory (Shared, Stack and Purgeable are refused)");
    const Access max_access = o.max_access == Access::None ? o.access : o.max_access;
    if (!is_subset(o.access, max_access))
        return fail(EINVAL, "access is not within max_access");
    if (!allow_write_execute_ && has(o.access, Access::Write) && has(o.access, Access::Execute))
        return fail(EACCES, "writable and executable at once (W+X) is refused");
    TRY(Region::validate_name(o.name));
    const size_t guard = has(o.flags, RegionFlags::Stack) ? page_ : 0;
    if (o.size > arena_.size() || o.size + guard > arena_.size() || alignment > arena_.size())
        return fail(ENOMEM, "larger than the arena");
    if (const uintptr_t fixed = uintptr_t(o.address)) {
        if (fixed % alignment != 0)
            return fail(EINVAL, "address is not aligned");
        if (fixed < guard || !arena_.contains(fixed - guard, o.size + guard))
            return fail(EINVAL, "address range is not inside the arena");
    }
    return {};
}

Result<void*> Mapper::map(const MapOptions& o, boost::intrusive_ptr<memory::VMObject> object, bool committed,
    size_t object_offset, memory::FaultAround readahead)
{
    TRY(validate(o));
    if (!object || object_offset > object->size() || object->size() - object_offset < o.size)
        return fail(EINVAL, "the object is smaller than the region");
    const bool stack = has(o.flags, RegionFlags::Stack);
    const size_t guard = stack ? page_ : 0;
    const size_t alignment = o.alignment ? o.alignment : page_;
    const uintptr_t fixed = uintptr_t(o.address);

    // Place the range (region plus guard page for stacks).
    Range reserved;
    {
        std::unique_lock tree(tree_.lock());
        if (fixed) {
            reserved = TRY(tree_.place_specifically(fixed - guard, o.size + guard));
        } else if (stack && alignment > page_) {
            // The region, not the guard, must be aligned: take an extra
            // alignment's worth, put the guard right below the aligned base
            // and give the rest back.
            Range placed = TRY(tree_.place_anywhere(o.size + alignment, alignment));
            (void)tree_.release_range({ placed.base, alignment - guard });
            reserved = { placed.base + alignment - guard, o.size + guard };
        } else {
            reserved = TRY(tree_.place_anywhere(o.size + guard, alignment));
        }
    }
    bool needs_reset = false;
    Rollback release([&] {
        if (needs_reset)
            (void)arena_.reset(reserved, uffd_);
        std::unique_lock tree(tree_.lock());
        (void)tree_.release_range(reserved);
    });

    const uintptr_t base = reserved.base + guard;
    if (int fd = object->backing_fd(); fd >= 0) {
        // The memfd is mapped over the arena range: a new VMA, not covered
        // by the arena's registration, so it gets its own. Unmapping the
        // region resets the range to arena memory again.
        needs_reset = true;
        if (int rc = os::map_fd_fixed(base, o.size, int(o.access), object->backing_map_type(), fd, object_offset); rc < 0)
            return failf(-rc, "mapping the object's memfd failed: %s", strerror(-rc));
        // A copy-on-write chain's layers, over their runs.
        if (int rc = object->map_layers(base, o.size, int(o.access), object_offset); rc < 0)
            return failf(-rc, "mapping the object's layers failed: %s", strerror(-rc));
        uffd::Userfaultfd& registrar = object->async_write_tracking() && async_uffd_ ? *async_uffd_ : uffd_;
        // A view the kernel serves by itself (a frozen copy-on-write
        // object) needs no registration.
        if (object->uffd_modes() != uffd::Mode::None)
            TRY(registrar.register_range(base, o.size, object->uffd_modes()));
    } else {
        if (int rc = os::protect(base, o.size, int(o.access)); rc < 0)
            return failf(-rc, "mprotect failed: %s", strerror(-rc));
        needs_reset = true;
        // A region whose object wants other faults than the arena's (write-
        // protect, minor) registers its own range again; unmapping resets it.
        if (object->uffd_modes() != memory::Arena::kModes)
            TRY(uffd_.register_range(base, o.size, object->uffd_modes()));
    }
    if (!o.name.empty() && features_.has(os::Feature::AnonName))
        (void)os::set_anon_name(base, o.size, o.name.c_str());

    Region::Params params;
    params.range = { base, o.size };
    params.object = std::move(object);
    params.name = o.name;
    params.access = o.access;
    params.max_access = o.max_access == Access::None ? o.access : o.max_access;
    params.flags = o.flags;
    params.guard_below = guard;
    params.committed = committed;
    params.object_offset = object_offset;
    params.readahead = readahead;
    auto region = TRY(Region::try_create(std::move(params)));
    if (has(o.flags, RegionFlags::Immutable) && features_.has(os::Feature::Mseal)) {
        if (int rc = os::seal(reserved.base, reserved.size); rc < 0)
            return failf(-rc, "mseal failed: %s", strerror(-rc));
        arena_.note_sealed(reserved);
    }
    release.dismiss();
    {
        std::unique_lock tree(tree_.lock());
        tree_.insert(std::move(region));
    }
    log::debug("mapped {:#x}+{:#x} '{}'", base, o.size, o.name);
    return reinterpret_cast<void*>(base);
}

Result<void> Mapper::unmap(uintptr_t address, size_t size)
{
    auto isolated = TRY(ops_.prepare(address, size));
    const uintptr_t end = address + size;

    // A stack keeps a guard page below it. If the range ends where a piece
    // of a stack begins that has none (an upper piece of a split stack, whose
    // lower piece is going now), the range's top page stays reserved as
    // that piece's new guard, so an overflow still faults instead of running
    // into whatever is mapped below later.
    Range keep {};
    Region* above = ops_.find(end);
    if (above && above->is_stack() && above->guard_below() == 0)
        keep = { end - page_, page_ };

    // New accesses fault with SIGSEGV from here on, as after munmap(2).
    if (int rc = os::protect(address, size, PROT_NONE); rc < 0) {
        // The mappings before the one refused are PROT_NONE already.
        ops_.restore_access(isolated, address, size);
        return failf(-rc, "mprotect failed: %s%s", strerror(-rc),
            rc == -ENOMEM ? " (splitting the mapping would pass vm.max_map_count; see docs/api.md)" : "");
    }

    std::vector<std::unique_ptr<Region>> retired;
    {
        std::unique_lock tree(tree_.lock());
        for (Region* r : isolated)
            retired.push_back(tree_.remove(*r));
    }
    size_t uncommit = 0;
    for (auto& r : retired) {
        // Pages installed by faults still in flight (or parked pending a
        // completion) must land before the range is dropped, or they would
        // survive into the next region placed here.
        tree_.wait_for_faults_to_end(*r);
        if (on_retire_)
            on_retire_(*r);
        give_back(*r, keep);
        if (r->is_committed())
            uncommit += r->size();
    }
    ledger_.uncharge(uncommit);

    if (keep.size) {
        auto guarded = above->try_create_piece(above->base(), above->size(), page_);
        if (guarded) {
            std::vector<std::unique_ptr<Region>> pieces;
            pieces.push_back(std::move(*guarded));
            ops_.replace(*above, std::move(pieces));
        } else {
            // Out of memory for the Region: the page stays reserved and
            // PROT_NONE all the same, only not owned; it is leaked to the
            // arena rather than handed out below a stack.
            log::error("stack at {:#x}: cannot record its new guard page", above->base());
        }
    }
    log::debug("unmapped {:#x}+{:#x}", address, size);
    return {};
}

void Mapper::give_back(Region& r, Range keep)
{
    const Range reserved = r.reserved_range();
    memory::VMObject& object = r.object();
    // Arena memory that only ever had its protection changed can be
    // recycled in place; anything else — a memfd mapped over it, another
    // registration, a SIGBUS page or poison — needs a fresh reservation.
    const bool in_place = object.backing_fd() < 0 && object.uffd_modes() == memory::Arena::kModes && !r.sigbus_delivered();
    auto ok = in_place ? arena_.recycle(reserved, !r.name().empty() && features_.has(os::Feature::AnonName))
                       : arena_.reset(reserved, uffd_);
    if (!ok) {
        // Leave the range out of the allocator rather than hand out memory
        // that still holds pages or is not registered with userfaultfd.
        log::error("cannot return {:#x}+{:#x} to the arena: {}", reserved.base, reserved.size, ok.error().message());
        return;
    }
    object.release_pages(r.object_offset() / page_, r.size() / page_);
    // Threads that faulted here after the region left the tree were
    // answered with a wake already; this catches any still queued.
    (void)uffd_.wake(reserved.base, reserved.size);
    if (async_uffd_)
        (void)async_uffd_->wake(reserved.base, reserved.size);
    Range freed = reserved;
    if (keep.size && keep.end() == reserved.end())
        freed.size -= keep.size;
    if (freed.size) {
        std::unique_lock tree(tree_.lock());
        (void)tree_.release_range(freed);
    }
}

} // namespace faultline
