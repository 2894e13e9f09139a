#include "core/runtime_core.h"

#include "core/json_writer.h"
#include "log.h"
#include "memory/anonymous_vm_object.h"
#include "os/pagemap.h"
#include "os/virtual_memory.h"

#include <algorithm>
#include <cstring>
#include <shared_mutex>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

namespace faultline {

using memory::Range;
using memory::Region;

namespace {

constexpr uint32_t kKnownFlags = uint32_t(RegionFlags::Shared) | uint32_t(RegionFlags::Stack)
    | uint32_t(RegionFlags::Immutable) | uint32_t(RegionFlags::Purgeable) | uint32_t(RegionFlags::NoReserve);

size_t default_commit_limit()
{
    struct sysinfo info {};
    if (sysinfo(&info) != 0)
        return SIZE_MAX;
    return (size_t(info.totalram) + size_t(info.totalswap)) * info.mem_unit;
}

std::string access_string(Access a)
{
    std::string s = "---";
    if (has(a, Access::Read))
        s[0] = 'r';
    if (has(a, Access::Write))
        s[1] = 'w';
    if (has(a, Access::Execute))
        s[2] = 'x';
    return s;
}

} // namespace

Result<std::unique_ptr<RuntimeCore>> RuntimeCore::try_create(Config config)
{
    const size_t page = os::page_size();
    if (config.arena_size == 0 || config.arena_size % page != 0)
        return fail(EINVAL, "arena_size must be a non-zero multiple of the page size");
    if (config.handler_threads > 64)
        return fail(EINVAL, "handler_threads must be at most 64");
    if (config.handler_threads == 0) {
        // Two handlers only pay off when they can sit on different CPUs;
        // on one CPU they add a context switch per fault.
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        config.handler_threads = cpus >= 2 ? 2 : 1;
    }
    if (config.fault_around_pages == 0 || config.fault_around_pages > 512)
        return fail(EINVAL, "fault_around_pages must be between 1 and 512");
    if (config.handler_spin_us > 1000000)
        return fail(EINVAL, "handler_spin_us must be at most 1000000");

    std::vector<std::string> unknown;
    os::FeatureSet disabled = os::disabled_features(config.disable, &unknown);
    for (auto& name : unknown)
        log::warn("FAULTLINE_DISABLE: unknown feature '{}' ignored", name);

    auto uffd = os::Userfaultfd::open(config.uffd_mode, disabled);
    if (!uffd)
        return std::unexpected(uffd.error());
    // Align the arena to 2 MiB so that aligned regions can later be backed
    // by huge pages without the arena's edges getting in the way.
    auto arena = memory::Arena::try_create(*uffd, config.arena_size, size_t(2) << 20);
    if (!arena)
        return std::unexpected(arena.error());
    uffd->refine_features(arena->range_ioctls());

    os::FeatureSet features = uffd->features();
    features.set(os::Feature::Mseal, !disabled.has(os::Feature::Mseal) && os::kernel_has_mseal());
    features.set(os::Feature::AnonName, !disabled.has(os::Feature::AnonName) && os::kernel_has_anon_name());

    size_t limit = config.commit_limit ? config.commit_limit : default_commit_limit();
    std::unique_ptr<RuntimeCore> core(new RuntimeCore(std::move(config), std::move(*uffd), std::move(*arena), features, limit));

    fault::FaultHandlerOptions options;
    options.threads = core->config_.handler_threads;
    options.fault_around_pages = core->config_.fault_around_pages;
    options.spin_us = core->config_.handler_spin_us;
    options.wake_before_fault_around = core->config_.wake_before_fault_around;
    options.use_zeropage = features.has(os::Feature::ZeroPage);
    options.use_poison = features.has(os::Feature::Poison);
    options.have_thread_id = features.has(os::Feature::ThreadId);
    auto handler = fault::FaultHandler::try_create(core->uffd_, core->tree_, options);
    if (!handler)
        return std::unexpected(handler.error());
    core->handler_ = std::move(*handler);

    std::string names;
    for (auto& n : features.names())
        names += n + " ";
    log::info("runtime up: arena {:#x}+{:#x}, {} handler thread(s), fault-around {}, route {}{}, features: {}",
        core->arena_.base(), core->arena_.size(), options.threads, options.fault_around_pages, core->uffd_.route(),
        core->uffd_.user_mode_only() ? " (user-mode-only)" : "", names);
    return core;
}

RuntimeCore::RuntimeCore(Config config, os::Userfaultfd uffd, memory::Arena arena, os::FeatureSet features, size_t commit_limit)
    : config_(std::move(config))
    , page_(os::page_size())
    , uffd_(std::move(uffd))
    , arena_(std::move(arena))
    , features_(features)
    , tree_(arena_.base(), arena_.size(), page_)
    , commit_limit_(commit_limit)
{
}

RuntimeCore::~RuntimeCore()
{
    // Stop serving first: once the threads are gone nothing touches the
    // tree. The arena is unmapped next (~Arena, members are destroyed in
    // reverse order: tree_, then arena_, then uffd_), and closing the
    // userfaultfd last wakes any thread still waiting on a fault; it then
    // finds the memory gone and takes SIGSEGV, as after munmap(2).
    if (handler_)
        handler_->stop();
}

Result<void> RuntimeCore::charge(size_t bytes)
{
    size_t now = committed_.load();
    do {
        if (bytes > commit_limit_ || now > commit_limit_ - bytes)
            return fail(ENOMEM, "commit limit reached (" + std::to_string(now) + " of " + std::to_string(commit_limit_) + " bytes committed)");
    } while (!committed_.compare_exchange_weak(now, now + bytes));
    return {};
}

void RuntimeCore::uncharge(size_t bytes) { committed_.fetch_sub(bytes); }

Result<void> RuntimeCore::validate_range(uintptr_t address, size_t size) const
{
    if (size == 0)
        return fail(EINVAL, "size is zero");
    if (address % page_ != 0 || size % page_ != 0)
        return fail(EINVAL, "address and size must be multiples of the page size");
    if (address + size < address)
        return fail(EINVAL, "address + size overflows");
    if (!arena_.contains(address, size))
        return fail(EINVAL, "range is not inside the arena");
    return {};
}

Result<void*> RuntimeCore::map_anonymous(const MapOptions& o)
{
    if (o.size == 0)
        return fail(EINVAL, "size is zero");
    if (o.size % page_ != 0)
        return fail(EINVAL, "size must be a multiple of the page size");
    size_t alignment = o.alignment ? o.alignment : page_;
    if (alignment < page_ || (alignment & (alignment - 1)) != 0)
        return fail(EINVAL, "alignment must be a power of two no smaller than the page size");
    if (uint8_t(o.access) & ~uint8_t(Access::ReadWriteExecute) || uint8_t(o.max_access) & ~uint8_t(Access::ReadWriteExecute))
        return fail(EINVAL, "unknown access bits");
    if (uint32_t(o.flags) & ~kKnownFlags)
        return fail(EINVAL, "unknown region flags");
    if (has(o.flags, RegionFlags::Purgeable))
        return fail(EOPNOTSUPP, "purgeable regions are not available yet (roadmap: purgeable memory)");
    Access max_access = o.max_access == Access::None ? o.access : o.max_access;
    if (!is_subset(o.access, max_access))
        return fail(EINVAL, "access is not within max_access");
    if (!config_.allow_write_execute && has(o.access, Access::Write) && has(o.access, Access::Execute))
        return fail(EACCES, "writable and executable at once (W+X) is refused");
    if (auto ok = Region::validate_name(o.name); !ok)
        return std::unexpected(ok.error());
    const bool stack = has(o.flags, RegionFlags::Stack);
    const size_t guard = stack ? page_ : 0;
    if (o.size > arena_.size() || o.size + guard > arena_.size() || alignment > arena_.size())
        return fail(ENOMEM, "larger than the arena");
    const uintptr_t fixed = uintptr_t(o.address);
    if (fixed) {
        if (fixed % alignment != 0)
            return fail(EINVAL, "address is not aligned");
        if (fixed < guard || !arena_.contains(fixed - guard, o.size + guard))
            return fail(EINVAL, "address range is not inside the arena");
    }

    const bool committed = !has(o.flags, RegionFlags::NoReserve);
    if (committed) {
        if (auto ok = charge(o.size); !ok)
            return std::unexpected(ok.error());
    }
    auto undo_charge = [&] {
        if (committed)
            uncharge(o.size);
    };
    const bool shared = has(o.flags, RegionFlags::Shared);
    auto object = shared ? memory::AnonymousVMObject::try_create_shared_with_size(o.size, page_, o.name.c_str())
                         : memory::AnonymousVMObject::try_create_with_size(o.size, page_);
    if (!object) {
        undo_charge();
        return std::unexpected(object.error());
    }

    std::lock_guard api(api_lock_);
    // Place the range (region plus guard page for stacks).
    Range reserved;
    {
        std::unique_lock tree(tree_.lock());
        Result<Range> placed = fail(ENOMEM, "");
        if (fixed) {
            placed = tree_.place_specifically(fixed - guard, o.size + guard);
        } else if (stack && alignment > page_) {
            // The region, not the guard, must be aligned: take an extra
            // alignment's worth, put the guard right below the aligned base
            // and give the rest back.
            placed = tree_.place_anywhere(o.size + alignment, alignment);
            if (placed) {
                Range extra = { placed->base, alignment - guard };
                (void)tree_.release_range(extra);
                placed = Range { placed->base + alignment - guard, o.size + guard };
            }
        } else {
            placed = tree_.place_anywhere(o.size + guard, alignment);
        }
        if (!placed) {
            undo_charge();
            return std::unexpected(placed.error());
        }
        reserved = *placed;
    }
    const uintptr_t base = reserved.base + guard;
    auto release = [&] {
        std::unique_lock tree(tree_.lock());
        (void)tree_.release_range(reserved);
        undo_charge();
    };

    if (shared) {
        // The memfd is mapped over the arena range: a new VMA, not covered
        // by the arena's registration, so it gets its own. Unmapping the
        // region resets the range to arena memory again.
        if (int rc = os::map_shared_fixed(base, o.size, int(o.access), (*object)->backing_fd()); rc < 0) {
            (void)arena_.reset(reserved, uffd_);
            release();
            return fail(-rc, std::string("mapping the shared object failed: ") + strerror(-rc));
        }
        if (auto reg = uffd_.register_missing(reinterpret_cast<void*>(base), o.size); !reg) {
            (void)arena_.reset(reserved, uffd_);
            release();
            return std::unexpected(reg.error());
        }
    } else if (int rc = os::protect(base, o.size, int(o.access)); rc < 0) {
        release();
        return fail(-rc, std::string("mprotect failed: ") + strerror(-rc));
    }
    if (!o.name.empty() && features_.has(os::Feature::AnonName))
        (void)os::set_anon_name(base, o.size, o.name.c_str());

    Region::Params params;
    params.range = { base, o.size };
    params.object = std::move(*object);
    params.name = o.name;
    params.access = o.access;
    params.max_access = max_access;
    params.flags = o.flags;
    params.guard_below = guard;
    params.committed = committed;
    auto region = Region::try_create(std::move(params));
    if (!region) {
        (void)arena_.reset(reserved, uffd_);
        release();
        return std::unexpected(region.error());
    }
    if (has(o.flags, RegionFlags::Immutable) && features_.has(os::Feature::Mseal)) {
        if (int rc = os::seal(reserved.base, reserved.size); rc < 0) {
            (void)arena_.reset(reserved, uffd_);
            release();
            return fail(-rc, std::string("mseal failed: ") + strerror(-rc));
        }
        arena_.note_sealed(reserved);
    }
    {
        std::unique_lock tree(tree_.lock());
        tree_.insert(std::move(*region));
    }
    log::debug("mapped {:#x}+{:#x} '{}' {}", base, o.size, o.name, access_string(o.access));
    return reinterpret_cast<void*>(base);
}

Result<std::vector<Region*>> RuntimeCore::covering_regions(uintptr_t address, size_t size, bool allow_immutable) const
{
    std::shared_lock tree(tree_.lock());
    if (!tree_.covers(address, size))
        return fail(ENOENT, "part of the range is not mapped");
    auto regions = tree_.regions_overlapping(address, size);
    if (!allow_immutable) {
        for (Region* r : regions)
            if (r->is_immutable())
                return fail(EPERM, "region '" + r->name() + "' is immutable");
    }
    return regions;
}

void RuntimeCore::replace_region(Region& old, std::vector<std::unique_ptr<Region>> pieces)
{
    std::unique_ptr<Region> retired;
    {
        std::unique_lock tree(tree_.lock());
        retired = tree_.remove(old);
        for (auto& piece : pieces)
            tree_.insert(std::move(piece));
    }
    // A handler may still be resolving a fault through the old Region; its
    // counters and its object must outlive that. Pieces view the same
    // object, so nothing changes for the page being installed.
    tree_.wait_for_faults_to_end(*retired);
    if (Region* heir = tree_.find_region_containing(retired->base()))
        heir->inherit_counters(*retired);
}

Result<std::vector<Region*>> RuntimeCore::isolate(uintptr_t address, size_t size)
{
    for (uintptr_t boundary : { address, address + size }) {
        Region* r;
        {
            std::shared_lock tree(tree_.lock());
            r = tree_.find_region_containing(boundary);
        }
        if (!r || r->base() == boundary)
            continue;
        auto left = r->try_create_piece(r->base(), boundary - r->base());
        if (!left)
            return std::unexpected(left.error());
        auto right = r->try_create_piece(boundary, r->end() - boundary);
        if (!right)
            return std::unexpected(right.error());
        std::vector<std::unique_ptr<Region>> pieces;
        pieces.push_back(std::move(*left));
        pieces.push_back(std::move(*right));
        replace_region(*r, std::move(pieces));
    }
    std::shared_lock tree(tree_.lock());
    return tree_.regions_overlapping(address, size);
}

Result<void> RuntimeCore::unmap(uintptr_t address, size_t size)
{
    if (auto ok = validate_range(address, size); !ok)
        return ok;
    std::lock_guard api(api_lock_);
    if (auto ok = covering_regions(address, size, false); !ok)
        return std::unexpected(ok.error());
    auto isolated = isolate(address, size);
    if (!isolated)
        return std::unexpected(isolated.error());

    // New accesses fault with SIGSEGV from here on, as after munmap(2).
    if (int rc = os::protect(address, size, PROT_NONE); rc < 0)
        return fail(-rc, std::string("mprotect failed: ") + strerror(-rc));

    std::vector<std::unique_ptr<Region>> retired;
    {
        std::unique_lock tree(tree_.lock());
        for (Region* r : *isolated)
            retired.push_back(tree_.remove(*r));
    }
    size_t uncommit = 0;
    for (auto& r : retired) {
        // Pages installed by faults still in flight must land before the
        // range is dropped, or they would survive into the next region
        // placed here.
        tree_.wait_for_faults_to_end(*r);
        Range reserved = r->reserved_range();
        if (auto ok = arena_.reset(reserved, uffd_); !ok) {
            // Leave the range out of the allocator rather than hand out
            // memory that is not registered with userfaultfd.
            log::error("cannot return {:#x}+{:#x} to the arena: {}", reserved.base, reserved.size, ok.error().message());
            continue;
        }
        r->object().release_pages(r->object_offset() / page_, r->size() / page_);
        // Threads that faulted here after the region left the tree were
        // answered with a wake already; this catches any still queued.
        uffd_.wake(reserved.base, reserved.size);
        if (r->is_committed())
            uncommit += r->size();
        std::unique_lock tree(tree_.lock());
        (void)tree_.release_range(reserved);
    }
    uncharge(uncommit);
    log::debug("unmapped {:#x}+{:#x}", address, size);
    return {};
}

Result<void> RuntimeCore::protect(uintptr_t address, size_t size, Access access)
{
    if (auto ok = validate_range(address, size); !ok)
        return ok;
    if (uint8_t(access) & ~uint8_t(Access::ReadWriteExecute))
        return fail(EINVAL, "unknown access bits");
    std::lock_guard api(api_lock_);
    auto regions = covering_regions(address, size, false);
    if (!regions)
        return std::unexpected(regions.error());
    for (Region* r : *regions)
        if (auto ok = r->check_protect(access, config_.allow_write_execute); !ok)
            return ok;
    auto isolated = isolate(address, size);
    if (!isolated)
        return std::unexpected(isolated.error());
    if (int rc = os::protect(address, size, int(access)); rc < 0)
        return fail(-rc, std::string("mprotect failed: ") + strerror(-rc));
    for (Region* r : *isolated)
        r->set_access(access);
    return {};
}

Result<void> RuntimeCore::set_name(uintptr_t address, size_t size, std::string_view name)
{
    if (auto ok = validate_range(address, size); !ok)
        return ok;
    if (auto ok = Region::validate_name(name); !ok)
        return ok;
    std::lock_guard api(api_lock_);
    if (auto ok = covering_regions(address, size, false); !ok)
        return std::unexpected(ok.error());
    auto isolated = isolate(address, size);
    if (!isolated)
        return std::unexpected(isolated.error());
    std::string copy(name);
    if (features_.has(os::Feature::AnonName))
        (void)os::set_anon_name(address, size, copy.empty() ? nullptr : copy.c_str());
    for (Region* r : *isolated)
        r->set_name(copy);
    return {};
}

Result<void> RuntimeCore::make_immutable(uintptr_t address, size_t size)
{
    if (auto ok = validate_range(address, size); !ok)
        return ok;
    std::lock_guard api(api_lock_);
    if (auto ok = covering_regions(address, size, false); !ok)
        return std::unexpected(ok.error());
    auto isolated = isolate(address, size);
    if (!isolated)
        return std::unexpected(isolated.error());
    if (features_.has(os::Feature::Mseal)) {
        // Seal the guard pages of whole stacks too, so the guard can never be
        // made accessible.
        for (Region* r : *isolated) {
            Range sealed = r->reserved_range();
            if (int rc = os::seal(sealed.base, sealed.size); rc < 0)
                return fail(-rc, std::string("mseal failed: ") + strerror(-rc));
            arena_.note_sealed(sealed);
            r->set_immutable();
        }
    } else {
        for (Region* r : *isolated)
            r->set_immutable();
    }
    return {};
}

Result<void> RuntimeCore::discard(uintptr_t address, size_t size)
{
    if (auto ok = validate_range(address, size); !ok)
        return ok;
    std::lock_guard api(api_lock_);
    auto regions = covering_regions(address, size, false);
    if (!regions)
        return std::unexpected(regions.error());
    for (Region* r : *regions) {
        uintptr_t lo = std::max(address, r->base());
        uintptr_t hi = std::min(address + size, r->end());
        size_t first = (r->object_offset() + (lo - r->base())) / page_;
        if (has(r->flags(), RegionFlags::Shared)) {
            // Dropping the mapping's pages is not enough for a memfd: the
            // page cache would hand them back. Punching the hole frees them
            // for every mapping (fork children included) and unmaps them.
            r->object().release_pages(first, (hi - lo) / page_);
            continue;
        }
        if (int rc = os::discard(lo, hi - lo); rc < 0)
            return fail(-rc, std::string("madvise failed: ") + strerror(-rc));
        r->object().forget_pages(first, (hi - lo) / page_);
    }
    return {};
}

RegionStats RuntimeCore::stats_for(const Region& r, const os::Pagemap* pagemap) const
{
    RegionStats s;
    s.base = r.base();
    s.size = r.size();
    s.name = r.name();
    s.access = r.access();
    s.max_access = r.max_access();
    s.flags = r.flags();
    s.object_kind = r.object().kind_name();
    s.zero_faults = r.zero_faults();
    s.pages_installed = r.pages_installed();
    s.has_been_writable = r.has_been_writable();
    s.has_been_executable = r.has_been_executable();
    if (!pagemap)
        return s;
    // Read the page tables in chunks so a huge sparse region costs bounded
    // memory here.
    constexpr size_t kChunk = 32768;
    const size_t pages = r.size() / page_;
    const size_t first_object_page = r.object_offset() / page_;
    for (size_t at = 0; at < pages; at += kChunk) {
        size_t n = std::min(kChunk, pages - at);
        auto entries = pagemap->read(r.base() + at * page_, n);
        if (!entries)
            break;
        for (size_t i = 0; i < n; ++i) {
            bool zero_hint = r.object().page_state(first_object_page + at + i) == memory::PageState::ZeroMapped;
            switch (pagemap->classify((*entries)[i], zero_hint)) {
            case os::Pagemap::Kind::Private:
                s.amount_resident += page_;
                s.amount_dirty += page_;
                break;
            case os::Pagemap::Kind::Shared:
                s.amount_resident += page_;
                s.amount_dirty += page_;
                ++s.cow_pages;
                break;
            case os::Pagemap::Kind::Zero:
                s.amount_zero_mapped += page_;
                break;
            case os::Pagemap::Kind::None:
                break;
            }
        }
    }
    return s;
}

Result<RegionStats> RuntimeCore::region_stats(uintptr_t address) const
{
    std::lock_guard api(api_lock_);
    Region* r;
    {
        std::shared_lock tree(tree_.lock());
        r = tree_.find_region_containing(address);
    }
    if (!r)
        return fail(ENOENT, "no region contains that address");
    auto pagemap = os::Pagemap::open();
    return stats_for(*r, pagemap ? &*pagemap : nullptr);
}

std::vector<RegionStats> RuntimeCore::regions() const
{
    std::lock_guard api(api_lock_);
    auto pagemap = os::Pagemap::open();
    std::vector<RegionStats> out;
    std::vector<Region*> all;
    {
        std::shared_lock tree(tree_.lock());
        tree_.for_each([&](Region& r) { all.push_back(&r); });
    }
    for (Region* r : all)
        out.push_back(stats_for(*r, pagemap ? &*pagemap : nullptr));
    return out;
}

RuntimeStats RuntimeCore::stats() const
{
    RuntimeStats s;
    handler_->fill_stats(s);
    s.committed = committed_.load();
    s.commit_limit = commit_limit_;
    {
        std::shared_lock tree(tree_.lock());
        s.region_count = tree_.region_count();
    }
    s.thread_ids_available = features_.has(os::Feature::ThreadId);
    if (s.thread_ids_available)
        s.threads = handler_->thread_counts();
    return s;
}

std::string RuntimeCore::to_json() const
{
    std::lock_guard api(api_lock_);
    auto pagemap = os::Pagemap::open();
    std::vector<Region*> all;
    {
        std::shared_lock tree(tree_.lock());
        tree_.for_each([&](Region& r) { all.push_back(&r); });
    }
    JsonWriter w;
    w.begin_object();
    w.key("arena");
    w.begin_object();
    w.key("base");
    w.hex(arena_.base());
    w.field("size", uint64_t(arena_.size()));
    w.field("page_size", uint64_t(page_));
    w.end_object();
    w.key("features");
    w.begin_array();
    for (auto& n : features_.names())
        w.value(n);
    w.end_array();
    w.field("user_mode_only", uffd_.user_mode_only());
    w.key("regions");
    w.begin_array();
    for (Region* r : all) {
        RegionStats s = stats_for(*r, pagemap ? &*pagemap : nullptr);
        w.begin_object();
        w.key("address");
        w.hex(s.base);
        w.field("size", uint64_t(s.size));
        w.field("name", s.name);
        w.field("access", access_string(s.access));
        w.field("max_access", access_string(s.max_access));
        w.field("shared", has(s.flags, RegionFlags::Shared));
        w.field("stack", has(s.flags, RegionFlags::Stack));
        w.field("immutable", has(s.flags, RegionFlags::Immutable));
        w.field("purgeable", has(s.flags, RegionFlags::Purgeable));
        w.field("noreserve", has(s.flags, RegionFlags::NoReserve));
        w.field("object", s.object_kind);
        w.field("resident", uint64_t(s.amount_resident));
        w.field("dirty", uint64_t(s.amount_dirty));
        w.field("zero_mapped", uint64_t(s.amount_zero_mapped));
        w.field("cow_pages", uint64_t(s.cow_pages));
        w.field("zero_faults", s.zero_faults);
        w.field("inode_faults", s.inode_faults);
        w.field("cow_faults", s.cow_faults);
        w.field("purged_faults", s.purged_faults);
        w.field("pages_installed", s.pages_installed);
        // The per-page map: one character per page ('.' absent, 'z' zero
        // page, 'D' private/dirty, 'c' shared copy-on-write), or per group of
        // pages for regions over 1024 pages, showing the group's strongest
        // state (D > c > z > .).
        const size_t pages = s.size / page_;
        const size_t per_char = pages <= 1024 ? 1 : (pages + 1023) / 1024;
        w.field("pages_per_char", uint64_t(per_char));
        std::string map;
        if (pagemap) {
            auto rank = [](char c) { return c == 'D' ? 3 : c == 'c' ? 2 : c == 'z' ? 1 : 0; };
            size_t first_object_page = r->object_offset() / page_;
            for (size_t g = 0; g < pages; g += per_char) {
                size_t n = std::min(per_char, pages - g);
                char best = '.';
                if (auto entries = pagemap->read(s.base + g * page_, n)) {
                    for (size_t i = 0; i < n; ++i) {
                        bool zero_hint = r->object().page_state(first_object_page + g + i) == memory::PageState::ZeroMapped;
                        char c = char(pagemap->classify((*entries)[i], zero_hint));
                        if (rank(c) > rank(best))
                            best = c;
                    }
                }
                map += best;
            }
        }
        w.field("page_map", map);
        w.end_object();
    }
    w.end_array();
    RuntimeStats st = stats();
    w.key("faults");
    w.begin_object();
    w.field("events", st.fault_events);
    w.field("deduplicated", st.faults_deduplicated);
    w.field("pages_installed", st.pages_installed);
    w.field("batches", st.batches);
    w.field("wakes", st.wakes);
    w.field("eexist", st.eexist);
    w.field("eagain_retries", st.eagain_retries);
    w.field("stale", st.stale_faults);
    w.field("sigbus", st.sigbus_delivered);
    w.end_object();
    w.key("commit");
    w.begin_object();
    w.field("committed", uint64_t(st.committed));
    w.field("limit", uint64_t(st.commit_limit));
    w.end_object();
    w.key("threads");
    w.begin_array();
    for (auto& t : st.threads) {
        w.begin_object();
        w.field("tid", t.tid);
        w.field("faults", t.faults);
        w.end_object();
    }
    w.end_array();
    w.end_object();
    return w.str();
}

} // namespace faultline
