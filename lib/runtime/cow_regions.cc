#include "runtime/cow_regions.h"

#include "memory/objects/private_inode_vm_object.h"
#include "memory/objects/purgeable_vm_object.h"

#include "os/pagemap.h"
#include "runtime/fork_preparation.h"
#include "os/virtual_memory.h"
#include "support/log.h"
#include "support/try.h"

#include <algorithm>
#include <optional>
#include <cerrno>
#include <cstring>
#include <pthread.h>
#include <shared_mutex>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace faultline {

using memory::CowVMObject;
using memory::Region;

namespace {

// Every runtime's clonable regions, for the pthread_atfork prepare handler.
// Never destroyed: atfork handlers outlive static destruction.
struct ForkRegistry {
    std::mutex lock;
    std::vector<CowRegions*> all;
};

ForkRegistry& fork_registry()
{
    static auto* registry = new ForkRegistry;
    return *registry;
}

void prepare_fork_all()
{
    ForkRegistry& r = fork_registry();
    std::lock_guard g(r.lock);
    for (CowRegions* c : r.all)
        c->prepare_fork();
}

// Pagemap entries are read this many pages at a time.
constexpr size_t kPagemapChunk = 4096;

} // namespace

CowRegions::CowRegions(Mapper& mapper, RegionOperations& ops, memory::RegionTree& tree, PurgeableRegions& purgeable,
    CommitLedger& ledger, std::mutex& api_lock, uffd::Userfaultfd& uffd, const os::FeatureSet& features, size_t page_size) noexcept
    : mapper_(mapper)
    , ops_(ops)
    , tree_(tree)
    , purgeable_(purgeable)
    , ledger_(ledger)
    , api_lock_(api_lock)
    , page_(page_size)
    , copies_(uffd, features, page_size)
    , chains_(features, page_size)
    , private_files_(mapper, copies_)
    , reaper_(features.has(os::Feature::DontUnmap))
{
    // Before the evictors hold their registry across the fork: the freeze
    // takes API locks (runtime/fork_preparation.h).
    install_fork_handlers(ForkStage::Freeze, { prepare_fork_all, nullptr, nullptr });
    ForkRegistry& r = fork_registry();
    std::lock_guard g(r.lock);
    r.all.push_back(this);
}

CowRegions::~CowRegions()
{
    ForkRegistry& r = fork_registry();
    std::lock_guard g(r.lock);
    r.all.erase(std::remove(r.all.begin(), r.all.end(), this), r.all.end());
}

namespace {
Result<Region*> clonable_region_at(RegionOperations& ops, uintptr_t address)
{
    Region* r = ops.find(address);
    if (!r)
        return fail(ENOENT, "no region at that address");
    if (r->base() != address)
        return fail(EINVAL, "a clone is of a whole region: the address is not the start of one");
    if (r->is_immutable())
        return fail(EPERM, "an immutable region cannot be cloned (its mapping cannot change)");
    if (!dynamic_cast<CowVMObject*>(&r->object()) && !dynamic_cast<memory::PrivateInodeVMObject*>(&r->object())
        && !dynamic_cast<memory::PurgeableVMObject*>(&r->object()))
        return failf(EINVAL, "region '%s' is not clonable (map it with RegionFlags::Clonable; private file regions and "
                             "purgeable regions are clonable as they are)", r->name().c_str());
    return r;
}
} // namespace

Result<void*> CowRegions::clone(uintptr_t address, std::string_view name)
{
    return TRY(make_view(address, name, false)).base;
}

Result<void*> CowRegions::snapshot(uintptr_t address, std::string_view name)
{
    View view = TRY(make_view(address, name, true));
    std::lock_guard api(api_lock_);
    for (auto it = snapshots_.begin(); it != snapshots_.end();) {
        Region* r = ops_.find(it->second.base);
        if (!r || r->serial() != it->first)
            it = snapshots_.erase(it);
        else
            ++it;
    }
    snapshots_[view.view] = { uintptr_t(view.base), view.source };
    return view.base;
}

Result<CowRegions::View> CowRegions::make_view(uintptr_t address, std::string_view name, bool read_only)
{
    // Checked before anything: a refused clone must not have frozen the
    // source.
    if (!name.empty())
        TRY(Region::validate_name(std::string(name)));
    size_t size;
    bool committed;
    bool purgeable;
    {
        std::lock_guard api(api_lock_);
        Region* r = TRY(clonable_region_at(ops_, address));
        purgeable = dynamic_cast<memory::PurgeableVMObject*>(&r->object()) != nullptr;
        size = r->size();
        committed = r->is_committed();
    }
    if (purgeable)
        return purgeable_view(address, name, read_only);
    // The clone may come to hold a private copy of every page: that is
    // charged now, so that running out is ENOMEM here and never SIGBUS at a
    // write (a NoReserve source makes a NoReserve clone).
    if (committed)
        TRY(purgeable_.charge(size));
    std::lock_guard api(api_lock_);
    auto uncharge = [&] {
        if (committed)
            ledger_.uncharge(size);
    };
    auto found = clonable_region_at(ops_, address);
    if (!found || (*found)->size() != size || (*found)->is_committed() != committed) {
        uncharge();
        return found ? fail(ENOENT, "the region changed while the clone was being charged") : std::unexpected(found.error());
    }
    Region& source = **found;
    if (dynamic_cast<memory::PrivateInodeVMObject*>(&source.object())) {
        // Never committed (as a private file mapping): nothing was charged.
        void* at = TRY(private_files_.clone(source, std::string(name), read_only));
        log::debug("{} {:#x}+{:#x} (a private file region) at {}", read_only ? "snapshot of" : "cloned", address, size, at);
        return View { at, source.serial(), ops_.find(uintptr_t(at))->serial() };
    }
    auto& object = static_cast<CowVMObject&>(source.object());
    boost::intrusive_ptr<memory::VMObject> viewed(&object);
    size_t offset = source.object_offset();
    Result<void> ready {};
    if (!object.frozen()) {
        ready = freeze(object);
    } else if (auto own = object.overlaid() ? Result<bool>(true) : chains_.has_own_pages(source); !own) {
        ready = std::unexpected(own.error());
    } else if (*own) {
        // Written since the freeze (or a view of an object with discarded
        // ranges): the clone views a chain with a layer of the pages the
        // source wrote, or a flattened copy (runtime/cow_chains.h; the
        // source is never remapped, so no write racing the clone is lost).
        if (auto chain = chains_.clone_of_written(source, &offset); chain)
            viewed = std::move(*chain);
        else
            ready = std::unexpected(chain.error());
    }
    if (!ready) {
        uncharge();
        return std::unexpected(ready.error());
    }
    MapOptions o;
    o.size = size;
    o.access = read_only ? Access::Read : source.access();
    o.max_access = read_only ? Access::Read : source.max_access();
    o.flags = source.flags();
    o.name = name.empty() ? source.name() : std::string(name);
    const uint64_t source_serial = source.serial();
    auto mapped = mapper_.map(o, std::move(viewed), committed, offset);
    if (!mapped) {
        uncharge();
        return std::unexpected(mapped.error());
    }
    log::debug("{} {:#x}+{:#x} at {}", read_only ? "snapshot of" : "cloned", address, size, *mapped);
    return View { *mapped, source_serial, ops_.find(uintptr_t(*mapped))->serial() };
}

Result<CowRegions::View> CowRegions::purgeable_view(uintptr_t address, std::string_view name, bool read_only)
{
    // Purgeable memory is private anonymous memory: no other mapping can
    // share its pages, so a clone copies them (its resident pages only).
    // What a copy buys is isolation: volatility, purges and purged pages
    // are each region's own (SerenityOS drops copy-on-write when a region
    // turns volatile; here there is nothing shared to drop).
    MapOptions o;
    PurgedAccess mode;
    std::function<bool(void*)> callback;
    uint64_t serial;
    {
        std::lock_guard api(api_lock_);
        Region* r = TRY(clonable_region_at(ops_, address));
        auto* object = dynamic_cast<memory::PurgeableVMObject*>(&r->object());
        if (!object)
            return fail(ENOENT, "the region changed while the clone was being made");
        o.size = r->size();
        o.access = read_only ? Access::Read : r->access();
        o.max_access = read_only ? Access::Read : r->max_access();
        o.flags = r->flags();
        o.name = name.empty() ? r->name() : std::string(name);
        mode = object->purged_access();
        callback = object->on_purged_access();
        serial = r->serial();
    }
    // Allocated (and charged) like any purgeable region, without the API
    // lock: the charge may purge.
    void* at = TRY(purgeable_.allocate(o, mode, std::move(callback)));
    std::lock_guard api(api_lock_);
    auto undo = [&](Error e) -> Result<View> {
        if (auto unmapped = mapper_.unmap(uintptr_t(at), o.size); !unmapped)
            log::error("clone: unmapping a half-made clone of a purgeable region failed: {}", unmapped.error().message());
        return std::unexpected(std::move(e));
    };
    Region* source = ops_.find(address);
    if (!source || source->base() != address || source->serial() != serial)
        return undo(Error(ENOENT, "the region was unmapped or split while the clone was being made"));
    auto& object = static_cast<memory::PurgeableVMObject&>(source->object());
    const size_t first = source->object_offset() / page_;
    std::optional<Error> failed;
    {
        // No page is purged while it is copied; a purged page (its contents
        // dropped, perhaps a SIGBUS marker in its place) is not copied: the
        // clone reads zeros there, as the source does once set_nonvolatile
        // has reported it.
        std::lock_guard purge(purgeable_.purge_lock());
        auto copied = copies_.copy_written(*source, uintptr_t(at), [&](size_t page) {
            const auto v = object.volatility().get(first + page);
            return v != memory::Volatility::Purged && v != memory::Volatility::Dropped && v != memory::Volatility::Purging;
        });
        if (!copied)
            failed.emplace(copied.error());
    }
    // Undone only once the purge lock is released: unmapping the clone
    // retires it from the purger, which takes that lock (a failed copy
    // under it once hung clone() for good — found by the c_api fuzzer).
    if (failed)
        return undo(std::move(*failed));
    log::debug("{} {:#x}+{:#x} (a purgeable region) at {}", read_only ? "snapshot of" : "cloned", address, o.size, at);
    return View { at, serial, ops_.find(uintptr_t(at))->serial() };
}

Result<void> CowRegions::rollback(uintptr_t address, uintptr_t snapshot)
{
    std::lock_guard api(api_lock_);
    Region* r = ops_.find(address);
    Region* s = ops_.find(snapshot);
    if (!r || !s)
        return fail(ENOENT, "no region at the region's or the snapshot's address");
    if (r->base() != address || s->base() != snapshot)
        return fail(EINVAL, "a rollback is of a whole region to a whole snapshot");
    auto known = snapshots_.find(s->serial());
    if (known == snapshots_.end())
        return fail(EINVAL, "not a snapshot");
    if (known->second.source != r->serial())
        return fail(EINVAL, "a snapshot of another region (or of this one before it was split or unmapped)");
    if (r->is_immutable())
        return fail(EPERM, "an immutable region cannot be rolled back");
    if (dynamic_cast<memory::PrivateInodeVMObject*>(&s->object())) {
        if (!dynamic_cast<memory::PrivateInodeVMObject*>(&r->object()) || r->size() != s->size())
            return fail(EINVAL, "the region no longer matches its snapshot");
        return private_files_.rollback(*r, *s);
    }
    if (auto* purgeable = dynamic_cast<memory::PurgeableVMObject*>(&r->object())) {
        if (!dynamic_cast<memory::PurgeableVMObject*>(&s->object()) || r->size() != s->size())
            return fail(EINVAL, "the region no longer matches its snapshot");
        // The region's own pages the snapshot lacks read zeros again; the
        // snapshot's are written over the rest. Under the purge lock: a
        // purge must not drop a page between the two steps.
        (void)purgeable;
        std::lock_guard purge(purgeable_.purge_lock());
        TRY(copies_.drop_written(*r, s));
        return copies_.copy_written(*s, r->base());
    }
    auto& target = static_cast<CowVMObject&>(s->object());
    if (&r->object() == &target && r->object_offset() == s->object_offset() && !target.overlaid()) {
        // The region still views the snapshot's frozen pages: what it wrote
        // since are exactly its own pages. Dropping them shows the frozen
        // ones again.
        auto pagemap = TRY(os::Pagemap::open());
        const size_t pages = r->size() / page_;
        std::vector<uint64_t> entries(std::min(kPagemapChunk, pages));
        for (size_t at = 0; at < pages; at += entries.size()) {
            const size_t n = std::min(entries.size(), pages - at);
            TRY(pagemap.read(r->base() + at * page_, n, entries.data()));
            for (size_t i = 0; i < n;) {
                auto own = [&](size_t k) {
                    return (os::Pagemap::present(entries[k]) || os::Pagemap::swapped(entries[k])) && !os::Pagemap::file_or_shared(entries[k]);
                };
                if (!own(i)) {
                    ++i;
                    continue;
                }
                size_t end = i + 1;
                while (end < n && own(end))
                    ++end;
                if (int rc = os::discard(r->base() + (at + i) * page_, (end - i) * page_); rc < 0)
                    return failf(-rc, "madvise failed: %s", strerror(-rc));
                i = end;
            }
        }
        return {};
    }
    // Otherwise the region becomes a view of the snapshot's object: one
    // remap, whatever was written (a clone copied for the snapshot, or
    // discarded ranges mapped over with zeros). Unless views of that object
    // had ranges discarded — perhaps the snapshot itself, which then reads
    // zeros there rather than the frozen pages: the region becomes a view
    // of a copy of what the snapshot holds.
    boost::intrusive_ptr<memory::VMObject> viewed(&target);
    size_t offset = s->object_offset();
    if (target.overlaid()) {
        viewed = TRY(chains_.copy_of(*s));
        offset = 0;
    }
    auto replacement = TRY(r->try_create_view_of(viewed, offset));
    int rc = os::map_fd_fixed(r->base(), r->size(), int(r->access()), MAP_PRIVATE, viewed->backing_fd(), offset);
    if (rc == 0 && (rc = viewed->map_layers(r->base(), r->size(), int(r->access()), offset)) < 0) {
        // The base is mapped but a layer is not (out of mappings, most
        // likely): the region would show the base's bytes there. It views a
        // flattened copy of the snapshot instead — one mapping.
        log::warn("rollback: mapping the snapshot's layers failed ({}); the region views a copy of it", strerror(-rc));
        viewed = TRY(chains_.copy_of(*s));
        replacement = TRY(r->try_create_view_of(viewed, 0));
        rc = os::map_fd_fixed(r->base(), r->size(), int(r->access()), MAP_PRIVATE, viewed->backing_fd(), 0);
    }
    if (rc < 0)
        return failf(-rc, "remapping the region failed: %s", strerror(-rc));
    std::vector<std::unique_ptr<Region>> pieces;
    pieces.push_back(std::move(replacement));
    ops_.replace(*r, std::move(pieces));
    return {};
}

Result<void> CowRegions::freeze(CowVMObject& object)
{
    std::vector<Region*> views;
    {
        std::shared_lock tree(tree_.lock());
        tree_.for_each([&](Region& r) {
            if (&r.object() == &object)
                views.push_back(&r);
        });
    }
    // From here a fault queued for the live mapping is told to retry: it
    // finds the kernel's view. A fill already under way either lands in the
    // memfd before the remap (a hole filled with zeros: nothing changes) or
    // finds the new mapping unregistered and fails harmlessly.
    object.freeze();
    for (size_t i = 0; i < views.size(); ++i) {
        Region& v = *views[i];
        // Unregistered first: the reaper moves the page tables of an
        // unregistered range whole, a registered one entry by entry (2.5 ms
        // per GiB instead of 0.2). A fault waiting there is woken and finds
        // the memfd's page (or a hole: zeros, as the frozen object says).
        const bool unregistered = reaper_.enabled() && mapper_.unregister_view(v.base(), v.size());
        if (int rc = reaper_.replace(v.base(), v.size(), int(v.access()), MAP_PRIVATE, object.backing_fd(), v.object_offset());
            rc < 0) {
            // Put the views already remapped back as they were: a frozen
            // object with a view still mapped shared would not be frozen.
            // This one is still mapped shared, maybe unregistered.
            for (size_t j = 0; j <= i; ++j) {
                Region& back = *views[j];
                int undo = j < i ? os::map_fd_fixed(back.base(), back.size(), int(back.access()), MAP_SHARED, object.backing_fd(), back.object_offset()) : 0;
                if (undo < 0 || ((j < i || unregistered) && !mapper_.register_view(back.base(), back.size(), uffd::Mode::Missing)))
                    log::error("clone: cannot restore the view at {:#x} after a failed freeze", back.base());
            }
            object.thaw();
            return failf(-rc, "remapping the region privately failed: %s", strerror(-rc));
        }
    }
    return {};
}

void CowRegions::prepare_fork() noexcept
{
    // A live clonable region is mapped shared: a fork child would share
    // its pages both ways. Frozen, both sides get private views.
    std::lock_guard api(api_lock_);
    std::vector<boost::intrusive_ptr<CowVMObject>> live;
    {
        std::shared_lock tree(tree_.lock());
        tree_.for_each([&](Region& r) {
            auto* object = dynamic_cast<CowVMObject*>(&r.object());
            if (object && !object->frozen() && std::find(live.begin(), live.end(), object) == live.end())
                live.emplace_back(object);
        });
    }
    for (auto& object : live)
        if (auto frozen = freeze(*object); !frozen)
            log::error("fork: a clonable region could not be frozen ({}); the child shares its pages", frozen.error().message());
}

} // namespace faultline
