#include "runtime/runtime_core.h"

#include "io/ring.h"
#include "memory/objects/anonymous_vm_object.h"
#include "memory/objects/inode_vm_object.h"
#include "memory/objects/swap_backed_vm_object.h"
#include "os/pagemap.h"
#include "os/psi_trigger.h"
#include "os/virtual_memory.h"
#include "runtime/file_swap_target.h"
#include "runtime/fork_preparation.h"
#include "runtime/redis_swap_target.h"
#include "runtime/json_report.h"
#include "support/log.h"
#include "support/try.h"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <shared_mutex>
#include <sys/mman.h>
#include <unistd.h>

namespace faultline {

using memory::Region;

namespace {

// Every runtime, for fork(). The file stage (runtime/file_fork_plan.h) holds
// each one's API lock from the prepare handler until the fork returned, so
// the plan it records still describes the regions the child inherits; the
// registry's own lock is held as long, so no runtime is destroyed in
// between. Never destroyed: atfork handlers outlive static destruction.
struct CoreRegistry {
    std::mutex lock;
    std::vector<RuntimeCore*> all;
};

CoreRegistry& core_registry()
{
    static auto* registry = new CoreRegistry;
    return *registry;
}

void after_fork_all(bool in_child)
{
    CoreRegistry& r = core_registry();
    for (RuntimeCore* c : r.all)
        c->after_fork(in_child);
    r.lock.unlock();
}

void register_for_fork(RuntimeCore* core)
{
    // After copy-on-write's freeze, which takes (and releases) the same API
    // locks; before the evictors hold theirs (runtime/fork_preparation.h).
    install_fork_handlers(ForkStage::Files,
        { [] {
             CoreRegistry& r = core_registry();
             r.lock.lock();
             for (RuntimeCore* c : r.all)
                 c->prepare_fork();
         },
            [] { after_fork_all(false); }, [] { after_fork_all(true); } });
    CoreRegistry& r = core_registry();
    std::lock_guard g(r.lock);
    r.all.push_back(core);
}

void unregister_for_fork(RuntimeCore* core)
{
    CoreRegistry& r = core_registry();
    std::lock_guard g(r.lock);
    r.all.erase(std::remove(r.all.begin(), r.all.end(), core), r.all.end());
}

// Resolves Config's "0 = automatic" values and checks the rest.
Result<Config> resolve(Config config)
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
    if (config.fault_around_max_pages == 0) {
        // Automatic: adapt up to 512 pages, except that 1 keeps meaning
        // "no fault-around at all".
        config.fault_around_max_pages = config.fault_around_pages == 1 ? 1 : 512;
    }
    if (config.fault_around_max_pages < config.fault_around_pages || config.fault_around_max_pages > 512)
        return fail(EINVAL, "fault_around_max_pages must be between fault_around_pages and 512");
    if (config.wake_order != WakeOrder::Adaptive && config.wake_order != WakeOrder::AfterWindow
        && config.wake_order != WakeOrder::BeforeWindow)
        return fail(EINVAL, "unknown wake_order");
    if (config.handler_spin_us > 1000000)
        return fail(EINVAL, "handler_spin_us must be at most 1000000");
    if (config.eviction_batch_pages == 0 || config.eviction_batch_pages > 4096)
        return fail(EINVAL, "eviction_batch_pages must be between 1 and 4096");
    if (config.budget_low_percent == 0 || config.budget_low_percent >= config.budget_high_percent
        || config.budget_high_percent > 100)
        return fail(EINVAL, "budget watermarks must be 0 < budget_low_percent < budget_high_percent <= 100");
    if (config.eviction_policy != EvictionPolicy::Clock && config.eviction_policy != EvictionPolicy::Fifo)
        return fail(EINVAL, "unknown eviction_policy");
    if (config.memory_budget && config.memory_budget / page < config.eviction_batch_pages)
        return failf(EINVAL, "memory_budget must hold at least one eviction batch (%u pages)", config.eviction_batch_pages);
    if (config.purge.order != PurgeOrder::Fifo && config.purge.order != PurgeOrder::Lifo)
        return fail(EINVAL, "unknown purge order");
    return config;
}

} // namespace

Result<std::unique_ptr<RuntimeCore>> RuntimeCore::try_create(Config requested)
{
    Config config = TRY(resolve(std::move(requested)));
    std::vector<std::string> unknown;
    os::FeatureSet disabled = os::disabled_features(config.disable, &unknown);
    // "stat_endpoint" is a switch of the runtime's own, not a kernel
    // feature with a fallback: it is not an os::Feature (so "all", which
    // the masked-feature suite uses, leaves the endpoint on), but it is
    // accepted in the same list, so that the endpoint of a program that
    // cannot be rebuilt can be turned off from its environment.
    for (auto& name : unknown) {
        if (name == "stat_endpoint")
            config.stat_endpoint = false;
        else
            log::warn("FAULTLINE_DISABLE: unknown feature '{}' ignored", name);
    }

    auto uffd = TRY(uffd::Userfaultfd::open(config.uffd_mode, disabled));
    // Align the arena to 2 MiB so that aligned regions can later be backed
    // by huge pages without the arena's edges getting in the way.
    auto arena = TRY(memory::Arena::try_create(uffd, config.arena_size, size_t(2) << 20));
    uffd.refine_features(arena.range_ioctls());

    os::FeatureSet features = uffd.features();
    features.set(os::Feature::Mseal, !disabled.has(os::Feature::Mseal) && os::kernel_has_mseal());
    features.set(os::Feature::AnonName, !disabled.has(os::Feature::AnonName) && os::kernel_has_anon_name());
    features.set(os::Feature::DontUnmap, !disabled.has(os::Feature::DontUnmap) && os::kernel_moves_shared_page_tables());
    features.set(os::Feature::PagemapScan, !disabled.has(os::Feature::PagemapScan) && os::Pagemap::scan_available());
    // io_uring exists since 5.1 but can be turned off (kernel.io_uring_disabled,
    // seccomp): ask for a ring rather than assume one.
    features.set(os::Feature::IoUring, !disabled.has(os::Feature::IoUring) && bool(io::Ring::create(2)));
    // Memory-pressure triggers: some kernels refuse them (or the process may
    // not write the pressure file). Probed once; purgeable memory then
    // watches pressure with the configured trigger.
    features.set(os::Feature::Psi, !disabled.has(os::Feature::Psi) && !config.purge.pressure_trigger.empty()
            && bool(os::PsiTrigger::open(config.purge.pressure_trigger)));

    // Asynchronous write tracking needs its own userfaultfd (the feature
    // applies to a whole descriptor) and PAGEMAP_SCAN to collect the pages.
    std::unique_ptr<uffd::Userfaultfd> async_uffd;
    if (features.has(os::Feature::PagemapScan) && features.has(os::Feature::WpShmem) && features.has(os::Feature::Minor)
        && !disabled.has(os::Feature::WpAsync)) {
        if (auto opened = uffd::Userfaultfd::open_async_wp(config.uffd_mode, disabled))
            async_uffd = std::make_unique<uffd::Userfaultfd>(std::move(*opened));
    }
    features.set(os::Feature::WpAsync, bool(async_uffd));

    std::unique_ptr<RuntimeCore> core(new RuntimeCore(std::move(config), std::move(uffd), std::move(arena), features));
    core->async_uffd_ = std::move(async_uffd);
    if (core->config_.memory_budget && core->config_.swap) {
        if (features.has(os::Feature::WriteProtect))
            core->swap_ = TRY(core->create_swap());
        else
            log::info("no write-protect faults on anonymous memory: anonymous regions stay outside the memory budget");
    }
    const Config& c = core->config_;
    fault::FaultHandlerOptions options;
    options.threads = c.handler_threads;
    options.dispatch.around = { c.fault_around_pages, c.fault_around_max_pages };
    options.dispatch.wake_order = c.wake_order;
    options.dispatch.have_thread_id = features.has(os::Feature::ThreadId);
    options.spin_us = c.handler_spin_us;
    options.use_zeropage = features.has(os::Feature::ZeroPage);
    options.use_poison = features.has(os::Feature::Poison);
    options.use_io_uring = features.has(os::Feature::IoUring);
    core->handler_ = TRY(fault::FaultHandler::try_create(core->uffd_, core->tree_, options));
    core->handler_options_ = options;
    if (core->async_uffd_) {
        core->mapper_.set_async_uffd(core->async_uffd_.get());
        // Its faults go through the same dispatcher logic against the same
        // tree, served by threads of their own, started on first need.
        RuntimeCore* raw = core.get();
        core->files_.on_first_async([raw]() -> Result<void> {
            if (!raw->async_handler_) {
                raw->async_handler_ = TRY(fault::FaultHandler::try_create(*raw->async_uffd_, raw->tree_, raw->handler_options_));
                raw->async_service_.store(raw->async_handler_.get(), std::memory_order_release);
            }
            return {};
        });
    }

    if (c.stat_endpoint) {
        // Last: its thread reads the whole runtime. The member is set
        // before the thread starts, since the reports read it too. A
        // runtime without its endpoint still serves faults, so failing to
        // publish one (out of descriptors, names taken) is logged, not
        // returned.
        RuntimeCore* raw = core.get();
        auto endpoint = StatEndpoint::open([raw] { return raw->to_json(); });
        if (endpoint) {
            core->stat_endpoint_ = std::move(*endpoint);
            if (auto started = core->stat_endpoint_->start(); !started) {
                core->stat_endpoint_.reset();
                endpoint = std::unexpected(started.error());
            }
        }
        if (!endpoint)
            log::warn("no statistics endpoint: {}", endpoint.error().message());
    }

    std::string names;
    for (auto& n : features.names())
        names += n + " ";
    log::info("runtime up: arena {:#x}+{:#x}, {} handler thread(s), fault-around {}..{}, route {}{}, features: {}",
        core->arena_.base(), core->arena_.size(), options.threads, c.fault_around_pages, c.fault_around_max_pages,
        core->uffd_.route(), core->uffd_.user_mode_only() ? " (user-mode-only)" : "", names);
    return core;
}

RuntimeCore::RuntimeCore(Config config, uffd::Userfaultfd uffd, memory::Arena arena, os::FeatureSet features)
    : config_(std::move(config))
    , page_(os::page_size())
    , uffd_(std::move(uffd))
    , arena_(std::move(arena))
    , features_(features)
    , tree_(arena_.base(), arena_.size(), page_)
    , ledger_(config_.commit_limit)
    , ops_(tree_, arena_, page_)
    , mapper_(uffd_, arena_, tree_, ops_, ledger_, features_, page_, config_.allow_write_execute)
    , statistics_(page_, features_.has(os::Feature::PagemapScan))
    , evictor_(std::make_unique<Evictor>(tree_, uffd_, page_, config_))
    , files_(mapper_, ops_, tree_, uffd_, features_, page_, config_.allow_write_execute, *evictor_)
    , purgeable_(mapper_, ops_, arena_, uffd_, ledger_, features_, config_.purge, api_lock_, page_)
    , cow_(mapper_, ops_, tree_, purgeable_, ledger_, api_lock_, uffd_, features_, page_)
{
    // A shared file region writes its dirty pages back as it leaves; a
    // purgeable region's pages leave the volatile set.
    mapper_.on_retire([this](Region& r) {
        files_.retire(r);
        purgeable_.retire(r);
    });
    register_for_fork(this);
}

void RuntimeCore::prepare_fork() noexcept
{
    // A fork child's copy is inert: its file regions were remapped when it
    // was forked, and its grandchildren inherit them as they are.
    if (!fork_guard_.in_owner())
        return;
    api_lock_.lock();
    fork_prepared_ = true;
    fork_lock_holder_.store(pthread_self(), std::memory_order_relaxed);
    fork_lock_held_.store(true, std::memory_order_release);
    files_.prepare_fork();
}

void RuntimeCore::after_fork(bool in_child) noexcept
{
    if (!fork_prepared_)
        return;
    fork_prepared_ = false;
    fork_lock_held_.store(false, std::memory_order_release);
    if (in_child)
        files_.after_fork_in_child();
    else
        files_.after_fork_in_parent();
    api_lock_.unlock();
}

RuntimeCore::~RuntimeCore()
{
    unregister_for_fork(this);
    // First, before anything its thread reads is torn down (in a fork
    // child it only lets go of the parent's thread handle). Stopped before
    // the pointer is cleared: the thread's reports read it.
    if (stat_endpoint_)
        stat_endpoint_->stop();
    stat_endpoint_.reset();
    if (!handler_)
        return;
    if (!fork_guard_.in_owner()) {
        // A fork child's copy: the handler threads are the parent's, and
        // the stop eventfd is shared with it. Touch nothing shared; the
        // members below close this process's descriptors and unmap this
        // process's copy of the arena, which the parent never sees.
        handler_->abandon();
        if (async_handler_)
            async_handler_->abandon();
        files_.abandon();
        purgeable_.abandon();
        evictor_->abandon();
        (void)evictor_.release();
        return;
    }
    // The evictor goes first; faults parked for room under the budget are
    // let through, since nothing evicts any more (they must end for the
    // handlers to drain).
    evictor_->shutdown();
    // Dirty file pages are written back while the handler threads still
    // serve (a write racing the write-back needs its write-protect fault).
    {
        std::lock_guard api(api_lock_);
        files_.sync_all();
    }
    // Faults parked pending a completion are finished first (their
    // completions need the handler threads). Then stop serving: once the
    // threads are gone nothing touches the tree.
    files_.wait_for_reads();
    handler_->drain();
    if (async_handler_) {
        async_handler_->drain();
        async_handler_->stop();
    }
    handler_->stop();
    // The purge worker answered the parked touches of purged pages during
    // the drain; it may still be purging (madvise, wake on the arena).
    purgeable_.stop();
    // Unmap the arena now (except sealed ranges), then wake every thread
    // still waiting on a fault: each retries, finds the memory gone and
    // takes SIGSEGV, as after munmap(2). Closing the userfaultfd would wake
    // them too, but not while a fork child holds a copy of the descriptor.
    // Sealed ranges stay mapped: unregister them, so that they become the
    // ordinary anonymous memory docs/api.md promises even while a fork
    // child keeps the userfaultfd open.
    arena_.release();
    for (const memory::Range& sealed : arena_.sealed())
        (void)uffd_.unregister_range(sealed.base, sealed.size);
    (void)uffd_.wake(arena_.base(), arena_.size());
    if (async_uffd_)
        (void)async_uffd_->wake(arena_.base(), arena_.size());
}

Result<void> RuntimeCore::check_owner() const noexcept
{
    if (!fork_guard_.in_owner())
        return fail(ECHILD, "this runtime belongs to the parent process: a fork child's copy is inert (docs/api.md, fork)");
    return {};
}

Result<std::shared_ptr<memory::SwapSpace>> RuntimeCore::create_swap()
{
    auto space = std::make_shared<memory::SwapSpace>();
    space->budget = evictor_->shared_budget();
    const uint64_t bytes = config_.swap_size ? config_.swap_size : arena_.size();
    const uint64_t slots = std::min<uint64_t>(bytes / page_, memory::SwapSlots::kNone - 1);
    if (slots < config_.eviction_batch_pages)
        return failf(EINVAL, "swap_size must hold at least one eviction batch (%u pages)", config_.eviction_batch_pages);
    space->slots = TRY(memory::SwapSlots::create(size_t(slots)));
    if (RedisEndpoint::is_url(config_.swap_path)) {
        // Far memory (docs/far-memory.md): the slots are keys on a server.
        space->target = TRY(RedisSwapTarget::create(config_.swap_path, page_));
        return space;
    }
    space->target = TRY(FileSwapTarget::create(config_.swap_path, page_, features_.has(os::Feature::IoUring),
        uint64_t(config_.eviction_batch_pages) * page_));
    return space;
}

Result<void*> RuntimeCore::map_anonymous(const MapOptions& o)
{
    TRY(check_owner());
    if (has(o.flags, RegionFlags::Purgeable))
        return purgeable_.allocate(o, PurgedAccess::Zero, {});
    TRY(mapper_.validate(o));
    const bool shared = has(o.flags, RegionFlags::Shared);
    boost::intrusive_ptr<memory::AnonymousVMObject> object;
    boost::intrusive_ptr<memory::SwapBackedVMObject> swapped;
    if (has(o.flags, RegionFlags::Clonable)) {
        // Its pages live in a memfd so that clones can share them (a clone
        // is the kernel's to serve): outside the budget, like shared memory.
        object = TRY(memory::CowVMObject::try_create(o.size, page_, o.name.c_str()));
    } else if (swap_ && !shared) {
        // Under the budget: its pages are charged as they come and swapped
        // out when cold. (A shared region's pages live in a memfd a fork
        // child shares: they stay outside the budget.)
        swapped = TRY(memory::SwapBackedVMObject::try_create(o.size, page_, swap_));
        object = swapped;
    } else {
        object = TRY(shared ? memory::AnonymousVMObject::try_create_shared_with_size(o.size, page_, o.name.c_str())
                            : memory::AnonymousVMObject::try_create_with_size(o.size, page_));
    }
    const bool committed = !has(o.flags, RegionFlags::NoReserve);
    if (committed)
        TRY(purgeable_.charge(o.size)); // volatile memory is purged first if that makes room
    std::lock_guard api(api_lock_);
    auto mapped = mapper_.map(o, std::move(object), committed);
    if (!mapped && committed)
        ledger_.uncharge(o.size);
    if (mapped && swapped) {
        if (auto added = evictor_->add(swapped); !added) {
            (void)mapper_.unmap(reinterpret_cast<uintptr_t>(*mapped), o.size);
            return std::unexpected(added.error());
        }
    }
    return mapped;
}

Result<void*> RuntimeCore::clone(uintptr_t address, std::string_view name)
{
    TRY(check_owner());
    return cow_.clone(address, name);
}

Result<void*> RuntimeCore::snapshot(uintptr_t address, std::string_view name)
{
    TRY(check_owner());
    return cow_.snapshot(address, name);
}

Result<void> RuntimeCore::rollback(uintptr_t address, uintptr_t snapshot)
{
    TRY(check_owner());
    return cow_.rollback(address, snapshot);
}

Result<void*> RuntimeCore::map_object(const MapOptions& o, boost::intrusive_ptr<memory::VMObject> object)
{
    TRY(check_owner());
    std::lock_guard api(api_lock_);
    return mapper_.map(o, std::move(object), false);
}

Result<void> RuntimeCore::unmap(uintptr_t address, size_t size)
{
    TRY(check_owner());
    std::lock_guard api(api_lock_);
    auto done = mapper_.unmap(address, size);
    files_.prune();
    evictor_->prune_swaps();
    return done;
}

Result<void*> RuntimeCore::map_file(int fd, const FileMapOptions& options)
{
    TRY(check_owner());
    std::lock_guard api(api_lock_);
    return files_.map(fd, options);
}

Result<void*> RuntimeCore::map_file(const char* path, const FileMapOptions& options)
{
    TRY(check_owner());
    if (!path)
        return fail(EINVAL, "path is NULL");
    // Read-write only where the mapping can write the file.
    const bool rw = options.sharing == Sharing::Shared && has(options.access, Access::Write);
    int fd = ::open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return failf(errno, "cannot open '%s': %s", path, strerror(errno));
    auto mapped = map_file(fd, options);
    close(fd);
    return mapped;
}

Result<void*> RuntimeCore::map_store(std::shared_ptr<Store> store, const StoreMapOptions& options)
{
    TRY(check_owner());
    std::lock_guard api(api_lock_);
    return files_.map_store(std::move(store), options);
}

Result<void> RuntimeCore::sync(uintptr_t address, size_t size, SyncFlags flags)
{
    TRY(check_owner());
    std::lock_guard api(api_lock_);
    return files_.sync(address, size, flags);
}

Result<void> RuntimeCore::protect(uintptr_t address, size_t size, Access access)
{
    TRY(check_owner());
    if (uint8_t(access) & ~uint8_t(Access::ReadWriteExecute))
        return fail(EINVAL, "unknown access bits");
    std::lock_guard api(api_lock_);
    auto regions = TRY(ops_.prepare(address, size, {}, [&](Region& r) -> Result<void> {
        if (auto ok = r.check_protect(access, config_.allow_write_execute); !ok)
            return ok;
        // Under a budget, written pages are evicted only where every write
        // raises a write-protect fault (runtime/evictor.h): as map_file
        // refuses such a writable view, so does protect.
        auto* file = dynamic_cast<memory::SharedInodeVMObject*>(&r.object());
        if (has(access, Access::Write) && file && file->cache().eviction()
            && !(file->tracks_writes() && !file->async_write_tracking()))
            return fail(EOPNOTSUPP,
                "writing a file region under a memory budget needs write-protect and minor faults on shared memory "
                "(docs/kernels.md)");
        return {};
    }));
    if (int rc = os::protect(address, size, int(access)); rc < 0) {
        // The mappings before the one refused have the new access already.
        ops_.restore_access(regions, address, size);
        return failf(-rc, "mprotect failed: %s%s", strerror(-rc),
            rc == -ENOMEM ? " (splitting the mapping would pass vm.max_map_count; see docs/api.md)" : "");
    }
    for (Region* r : regions) {
        r->set_access(access);
        if (has(access, Access::Write))
            if (auto* file = dynamic_cast<memory::SharedInodeVMObject*>(&r->object()))
                file->note_writable();
    }
    return {};
}

Result<void> RuntimeCore::set_name(uintptr_t address, size_t size, std::string_view name)
{
    TRY(check_owner());
    TRY(Region::validate_name(name));
    std::lock_guard api(api_lock_);
    auto regions = TRY(ops_.prepare(address, size));
    std::string copy(name);
    if (features_.has(os::Feature::AnonName))
        (void)os::set_anon_name(address, size, copy.empty() ? nullptr : copy.c_str());
    for (Region* r : regions)
        r->set_name(copy);
    return {};
}

Result<void> RuntimeCore::make_immutable(uintptr_t address, size_t size)
{
    TRY(check_owner());
    std::lock_guard api(api_lock_);
    auto regions = TRY(ops_.prepare(address, size));
    for (Region* r : regions) {
        if (features_.has(os::Feature::Mseal)) {
            // Seal the guard pages of whole stacks too, so the guard can
            // never be made accessible.
            memory::Range sealed = r->reserved_range();
            if (int rc = os::seal(sealed.base, sealed.size); rc < 0)
                return failf(-rc, "mseal failed: %s", strerror(-rc));
            arena_.note_sealed(sealed);
        }
        r->set_immutable();
    }
    return {};
}

Result<void> RuntimeCore::discard(uintptr_t address, size_t size)
{
    TRY(check_owner());
    // The forking thread holds the API lock from the prepare handler of the
    // file regions until the fork returned, and may get here meanwhile: a
    // later prepare handler (the evictors', or the program's own) allocates,
    // and under the preloaded heap the allocator's madvise becomes this call
    // (a bash under `faultline run` hung in fork so). Locking again would
    // wait for itself; holding the lock already, it has the exclusion the
    // lock gives.
    std::unique_lock api(api_lock_, std::defer_lock);
    if (!(fork_lock_held_.load(std::memory_order_acquire) && pthread_equal(fork_lock_holder_.load(std::memory_order_relaxed), pthread_self())))
        api.lock();
    TRY(ops_.validate_range(address, size));
    for (Region* r : TRY(ops_.covering(address, size, {}))) {
        const uintptr_t lo = std::max(address, r->base());
        const uintptr_t hi = std::min(address + size, r->end());
        const size_t first = (r->object_offset() + (lo - r->base())) / page_;
        if (auto* cow = dynamic_cast<memory::CowVMObject*>(&r->object()); cow && cow->frozen()) {
            // A copy-on-write view: dropping its pages would show the frozen
            // ones again. Fresh anonymous memory reads zeros, as a discarded
            // anonymous page must (the kernel serves it like the rest).
            if (int rc = os::map_anonymous_fixed(lo, hi - lo, int(r->access())); rc < 0)
                return failf(-rc, "mmap failed: %s", strerror(-rc));
            cow->note_overlay();
            continue;
        }
        if (r->object().backing_map_type() == MAP_PRIVATE) {
            // A private file region: its written pages are private copies;
            // dropping them makes the next touch see the file again (the
            // cache's page, or a read). The cache itself is left alone.
            if (int rc = os::discard(lo, hi - lo); rc < 0)
                return failf(-rc, "madvise failed: %s", strerror(-rc));
            continue;
        }
        if (dynamic_cast<const memory::InodeVMObject*>(&r->object())) {
            // A shared file region: its pages are the file's, written or
            // not. Zapping them would drop nothing from the cache but would
            // erase the record of writes that asynchronous write-protect
            // keeps in the page tables, so sync would miss them.
            continue;
        }
        if (r->object().backing_fd() >= 0) {
            // Dropping the mapping's pages is not enough for a memfd: the
            // page cache would hand them back. Punching the hole frees them
            // for every mapping (fork children included) and unmaps them.
            r->object().release_pages(first, (hi - lo) / page_);
            continue;
        }
        // Forgotten first, dropped second: a touch in between is filled
        // and recorded, then dropped — a record of a page that is not there
        // costs a fault. The other order would leave a page refilled in
        // between recorded as never populated, which a purge once trusted.
        if (auto* swapped = dynamic_cast<memory::SwapBackedVMObject*>(&r->object())) {
            // Their swap slots go too. The budget keeps their charge until
            // they are gone: pages filled meanwhile never take the room of
            // pages still resident.
            const size_t charged = swapped->release_keeping_charge(first, (hi - lo) / page_);
            const int rc = os::discard(lo, hi - lo);
            swapped->uncharge_released(charged);
            if (rc < 0)
                return failf(-rc, "madvise failed: %s", strerror(-rc));
            continue;
        }
        r->object().forget_pages(first, (hi - lo) / page_);
        if (int rc = os::discard(lo, hi - lo); rc < 0)
            return failf(-rc, "madvise failed: %s", strerror(-rc));
    }
    return {};
}

Result<void*> RuntimeCore::allocate_purgeable(size_t size, const PurgeableOptions& options)
{
    TRY(check_owner());
    return purgeable_.allocate(size, options);
}

Result<void> RuntimeCore::set_volatile(uintptr_t address, size_t size, VolatileOptions options)
{
    TRY(check_owner());
    return purgeable_.set_volatile(address, size, options);
}

Result<NonVolatileResult> RuntimeCore::set_nonvolatile(uintptr_t address, size_t size)
{
    TRY(check_owner());
    return purgeable_.set_nonvolatile(address, size);
}

Result<PurgeResult> RuntimeCore::purge(size_t bytes)
{
    TRY(check_owner());
    return purgeable_.purge(bytes);
}

Result<void> RuntimeCore::set_purge_callbacks(PurgeCallbacks callbacks)
{
    TRY(check_owner());
    return purgeable_.set_callbacks(std::move(callbacks));
}

void RuntimeCore::settle_counts() const noexcept
{
    handler_->settle();
    if (fault::FaultHandler* async = async_service_.load(std::memory_order_acquire))
        async->settle();
}

Result<RegionStats> RuntimeCore::region_stats(uintptr_t address) const
{
    TRY(check_owner());
    // Counts include every fault that has returned to its thread.
    settle_counts();
    RegionSnapshot snap;
    {
        std::lock_guard api(api_lock_);
        Region* r = ops_.find(address);
        if (!r)
            return fail(ENOENT, "no region contains that address");
        snap = RegionStatistics::snapshot(*r);
    }
    statistics_.measure(snap, nullptr);
    return snap.stats;
}

std::vector<RegionSnapshot> RuntimeCore::snapshot_all() const
{
    std::vector<RegionSnapshot> all;
    settle_counts();
    std::lock_guard api(api_lock_);
    std::shared_lock tree(tree_.lock());
    all.reserve(tree_.region_count());
    tree_.for_each([&](Region& r) { all.push_back(RegionStatistics::snapshot(r)); });
    return all;
}

std::vector<RegionStats> RuntimeCore::regions() const
{
    std::vector<RegionStats> out;
    for (RegionSnapshot& snap : snapshot_all()) {
        statistics_.measure(snap, nullptr);
        out.push_back(std::move(snap.stats));
    }
    return out;
}

RuntimeStats RuntimeCore::stats() const
{
    RuntimeStats s;
    settle_counts();
    handler_->fill_stats(s);
    fault::FaultHandler* async = async_service_.load(std::memory_order_acquire);
    if (async)
        async->fill_stats(s);
    s.committed = ledger_.committed();
    s.commit_limit = ledger_.limit();
    if (memory::PageBudget* budget = evictor_->budget()) {
        s.memory_budget = uint64_t(budget->budget()) * page_;
        s.budget_resident_bytes = uint64_t(budget->resident()) * page_;
        s.budget_waits = budget->parked_total();
        s.budget_overruns = budget->overruns();
    }
    const Evictor::Totals totals = evictor_->totals();
    s.evictions_clean = totals.evictions_clean;
    s.evictions_dirty = totals.evictions_dirty;
    s.eviction_write_errors = totals.write_errors;
    s.referenced_refaults = totals.referenced_refaults;
    if (swap_) {
        s.swap_enabled = true;
        s.swapped_out = totals.swapped_out;
        s.swapped_in = totals.swapped_in;
        s.swap_clean_drops = totals.swap_clean_drops;
        s.swap_write_errors = totals.swap_write_errors;
        s.swap_read_errors = totals.swap_read_errors;
        s.swap_slots_reclaimed = totals.swap_slots_reclaimed;
        s.swap_slots_used = swap_->slots->used();
        s.swap_slots_total = swap_->slots->capacity();
        s.swap_full_events = swap_->full_events.load();
    }
    {
        std::shared_lock tree(tree_.lock());
        s.region_count = tree_.region_count();
    }
    if (stat_endpoint_) {
        s.stat_replies = stat_endpoint_->replies();
        s.stat_refused = stat_endpoint_->refused();
    }
    s.thread_ids_available = features_.has(os::Feature::ThreadId);
    if (s.thread_ids_available) {
        s.threads = handler_->thread_counts();
        if (async)
            for (auto& t : async->thread_counts())
                s.threads.push_back(t);
    }
    return s;
}

std::string RuntimeCore::to_json() const
{
    JsonReportInput in;
    in.arena_base = arena_.base();
    in.arena_size = arena_.size();
    in.page_size = page_;
    in.features = features_.names();
    in.user_mode_only = uffd_.user_mode_only();
    for (RegionSnapshot& snap : snapshot_all()) {
        JsonReportInput::Region region;
        region.pages_per_char = statistics_.measure(snap, &region.page_map);
        region.snapshot = std::move(snap);
        in.regions.push_back(std::move(region));
    }
    in.stats = stats();
    in.purge = purgeable_.stats();
    in.stat_address = stat_address();
    return json_report(in);
}

} // namespace faultline
