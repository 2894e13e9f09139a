#include "runtime/evictor.h"
#include "runtime/fork_preparation.h"
#include "support/runtime_thread.h"

#include "memory/objects/inode_vm_object.h"
#include "memory/objects/shared_inode_vm_object.h"
#include "os/fault_injection.h"
#include "support/log.h"
#include "support/try.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <pthread.h>
#include <shared_mutex>
#include <sys/mman.h>
#include <unistd.h>

namespace faultline {

using memory::EvictionList;
using memory::FileCache;
using memory::PageState;

namespace {

// The evictors with swap-backed objects, for fork preparation: a fork child
// has no fault service, so a page that is swapped out when the process
// forks would read zeros in the child. The prepare handler brings every
// swapped page back in first (Evictor::prepare_fork) and holds each evictor
// still across the fork.
struct ForkRegistry {
    std::mutex lock;
    std::vector<Evictor*> evictors;
};

ForkRegistry& fork_registry()
{
    static auto* registry = new ForkRegistry; // never destroyed: atfork handlers outlive static destruction
    return *registry;
}

void register_for_fork(Evictor* evictor)
{
    // After copy-on-write's freeze (runtime/fork_preparation.h says why).
    install_fork_handlers(ForkStage::Evictors,
        { [] {
             ForkRegistry& r = fork_registry();
             r.lock.lock();
             for (Evictor* e : r.evictors)
                 e->prepare_fork();
         },
            [] {
                ForkRegistry& r = fork_registry();
                for (Evictor* e : r.evictors)
                    e->resume_after_fork();
                r.lock.unlock();
            },
            [] {
                // The child's evictors are copies whose threads never
                // existed (their runtimes are inert): forget them. The
                // lock was taken by this very thread in prepare: unlocked
                // like any other (a fresh mutex constructed over it would
                // still be held as far as ThreadSanitizer knows, and the
                // child's next lock would look taken under it).
                ForkRegistry& r = fork_registry();
                r.evictors.clear();
                r.lock.unlock();
            } });
    ForkRegistry& r = fork_registry();
    std::lock_guard g(r.lock);
    if (std::find(r.evictors.begin(), r.evictors.end(), evictor) == r.evictors.end())
        r.evictors.push_back(evictor);
}

void unregister_for_fork(Evictor* evictor)
{
    ForkRegistry& r = fork_registry();
    std::lock_guard g(r.lock);
    r.evictors.erase(std::remove(r.evictors.begin(), r.evictors.end(), evictor), r.evictors.end());
}

} // namespace

Evictor::Evictor(memory::RegionTree& tree, uffd::Userfaultfd& uffd, size_t page_size, const Config& config)
    : tree_(tree)
    , uffd_(uffd)
    , page_(page_size)
    , config_(config)
    , swap_out_(tree, uffd, page_size, config.eviction_policy)
{
    if (config.memory_budget)
        // Its wake-up names this evictor: caches that outlive it only ever
        // uncharge (the handler threads, which charge, stop first).
        budget_ = std::make_shared<memory::PageBudget>(size_t(config.memory_budget / page_size),
            config.budget_high_percent, config.budget_low_percent, config.eviction_batch_pages, &Evictor::wake_thunk,
            this);
}

Evictor::~Evictor() { shutdown(); }

void Evictor::shutdown() noexcept
{
    if (abandoned_)
        return; // a fork child's copy: the ports and budgets are the parent's business
    unregister_for_fork(this);
    {
        std::lock_guard g(lock_);
        stopping_ = true;
    }
    wakeup_.notify_all();
    if (thread_.joinable())
        thread_.join();
    std::lock_guard g(registry_lock_);
    for (auto& cache : caches_)
        if (memory::PageBudget* own = cache->own_budget()) {
            own->set_overrun(true);
            own->release_waiters();
        }
    if (budget_) {
        budget_->set_overrun(true);
        budget_->release_waiters();
    }
}

Result<void> Evictor::add(const boost::intrusive_ptr<FileCache>& cache, uint64_t own_bytes)
{
    const size_t own_pages = size_t((own_bytes + page_ - 1) / page_);
    if (own_bytes && own_pages < config_.eviction_batch_pages)
        return failf(EINVAL, "a region's budget must hold at least one eviction batch (%u pages)",
            config_.eviction_batch_pages);
    TRY(cache->enable_eviction(budget_, own_pages, config_.budget_high_percent, config_.budget_low_percent,
        config_.eviction_batch_pages, &Evictor::wake_thunk, this));
    {
        std::lock_guard pass(pass_lock_);
        std::lock_guard registry(registry_lock_);
        if (std::find(caches_.begin(), caches_.end(), cache) == caches_.end())
            caches_.push_back(cache);
    }
    return start_thread();
}

Result<void> Evictor::add(const boost::intrusive_ptr<memory::SwapBackedVMObject>& object)
{
    {
        std::lock_guard pass(pass_lock_);
        std::lock_guard registry(registry_lock_);
        swaps_.push_back(object);
    }
    register_for_fork(this);
    return start_thread();
}

void Evictor::remove(const memory::SwapBackedVMObject* object)
{
    std::lock_guard pass(pass_lock_);
    std::lock_guard registry(registry_lock_);
    for (auto it = swaps_.begin(); it != swaps_.end(); ++it)
        if (it->get() == object) {
            add_swap_counters(retired_, *object);
            swaps_.erase(it);
            return;
        }
}

void Evictor::prune_swaps()
{
    std::vector<boost::intrusive_ptr<memory::SwapBackedVMObject>> gone;
    {
        std::lock_guard pass(pass_lock_);
        std::lock_guard registry(registry_lock_);
        for (auto it = swaps_.begin(); it != swaps_.end();) {
            if ((*it)->use_count() == 1) {
                add_swap_counters(retired_, **it);
                gone.push_back(std::move(*it));
                it = swaps_.erase(it);
            } else {
                ++it;
            }
        }
    }
    // Destroyed here, outside the locks.
}

void Evictor::add_swap_counters(Totals& t, const memory::SwapBackedVMObject& object) noexcept
{
    const auto& c = object.counters();
    t.swapped_out += c.swapped_out.load();
    t.swapped_in += c.swapped_in.load();
    t.swap_clean_drops += c.clean_drops.load();
    t.swap_write_errors += c.write_errors.load();
    t.swap_read_errors += c.read_errors.load();
    t.swap_slots_reclaimed += c.slots_reclaimed.load();
}

void Evictor::prepare_fork()
{
    // Copied before the evictor is held: the copy allocates, and under the
    // preloaded heap an allocation may fault on memory this very runtime
    // serves — a fault that may wait for room only the evictor makes (a
    // bash under `faultline run` hung in fork so).
    std::vector<boost::intrusive_ptr<memory::SwapBackedVMObject>> swaps;
    if (budget_) {
        std::lock_guard registry(registry_lock_);
        swaps = swaps_;
    }
    pass_lock_.lock();
    fork_paused_ = true;
    if (!budget_)
        return;
    // Held across the fork, the evictor makes no room until the fork has
    // returned, so no fault may wait for room meanwhile: the program's other
    // prepare handlers run after this one, and any of them may allocate from
    // memory this runtime serves. The budget is opened (and closed again by
    // resume_after_fork); the swapped pages come back in.
    budget_->set_overrun(true);
    budget_->release_waiters();
    for (auto& object : swaps)
        if (object->swapped_pages() > 0)
            swap_out_.swap_in_all(*object);
}

void Evictor::resume_after_fork()
{
    if (!fork_paused_)
        return;
    fork_paused_ = false;
    pass_lock_.unlock();
    if (budget_ && budget_->overrun()) {
        budget_->set_overrun(false);
        wake(); // evict back down to the budget
    }
}

Result<void> Evictor::start_thread()
{
    std::lock_guard g(lock_);
    if (!thread_.joinable())
        thread_ = TRY(start_runtime_thread("evictor", [this] { run(); }));
    return {};
}

void Evictor::remove(const FileCache* cache)
{
    // Waits for a pass in progress: once this returns, the evictor holds no
    // reference to the cache, and a cache no region views is freed at once
    // (with its pages, uncharged from the budget).
    std::lock_guard pass(pass_lock_);
    std::lock_guard registry(registry_lock_);
    for (auto it = caches_.begin(); it != caches_.end(); ++it)
        if (it->get() == cache) {
            const auto& c = cache->counters();
            retired_.evictions_clean += c.evictions_clean.load();
            retired_.evictions_dirty += c.evictions_dirty.load();
            retired_.write_errors += c.eviction_write_errors.load();
            retired_.referenced_refaults += c.referenced_refaults.load();
            caches_.erase(it);
            return;
        }
}

void Evictor::wake() noexcept
{
    {
        std::lock_guard g(lock_);
        woken_ = true;
    }
    wakeup_.notify_one();
}

void Evictor::abandon() noexcept
{
    new (&thread_) std::thread();
    stopping_ = true;
    abandoned_ = true;
}

Evictor::Totals Evictor::totals() const
{
    std::lock_guard g(registry_lock_);
    Totals t = retired_;
    for (const auto& cache : caches_) {
        const auto& c = cache->counters();
        t.evictions_clean += c.evictions_clean.load();
        t.evictions_dirty += c.evictions_dirty.load();
        t.write_errors += c.eviction_write_errors.load();
        t.referenced_refaults += c.referenced_refaults.load();
    }
    for (const auto& object : swaps_)
        add_swap_counters(t, *object);
    return t;
}

template <typename Fn>
void Evictor::for_each_shared_view(const FileCache& cache, size_t first, size_t count, Fn&& fn)
{
    tree_.for_each([&](memory::Region& r) {
        auto* object = dynamic_cast<memory::SharedInodeVMObject*>(&r.object());
        if (!object || &object->cache() != &cache)
            return;
        const size_t r_first = r.object_offset() / page_;
        const size_t r_end = r_first + r.size() / page_;
        const size_t lo = std::max(first, r_first), hi = std::min(first + count, r_end);
        if (lo < hi)
            fn(r.base() + (lo - r_first) * page_, (hi - lo) * page_);
    });
}

bool Evictor::write_back(FileCache& cache, size_t first, size_t count, uint64_t size)
{
    const uint64_t offset = uint64_t(first) * page_;
    if (offset >= size)
        return true; // wholly past the end: nothing of it belongs to the file
    // Never past the end of the file: eviction never extends it.
    const size_t bytes = size_t(std::min<uint64_t>(uint64_t(count) * page_, size - offset));
    const char* data = cache.page_bytes(first);
    if (os::FaultInjection::take(cache.store() ? os::InjectOp::StoreWrite : os::InjectOp::FileWrite, uintptr_t(offset)))
        return false;
    if (int ms = os::FaultInjection::take(os::InjectOp::WriteDelay, uintptr_t(offset)))
        usleep(useconds_t(ms) * 1000);
    if (Store* store = cache.store()) {
        const int64_t n = store->write(data, bytes, offset);
        if (n == int64_t(bytes)) {
            cache.counters().bytes_written.fetch_add(bytes, std::memory_order_relaxed);
            return true;
        }
        return false;
    }
    size_t done = 0;
    while (done < bytes) {
        ssize_t n = cache.write_file(data + done, bytes - done, offset + done); // O_DIRECT: see there
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += size_t(n);
    }
    cache.counters().bytes_written.fetch_add(done, std::memory_order_relaxed);
    return done == bytes;
}

size_t Evictor::evict(FileCache& cache, size_t want)
{
    EvictionList* list = cache.eviction();
    if (!list)
        return 0;
    memory::PageStates& states = cache.states();
    // Written pages can be evicted only where every write is seen by a
    // write-protect fault (memory/objects/eviction_list.h); elsewhere only a
    // cache no region could ever write.
    bool may_be_dirty = false, dirty_evictable = false;
    {
        std::shared_lock tree(tree_.lock());
        tree_.for_each([&](memory::Region& r) {
            auto* object = dynamic_cast<memory::SharedInodeVMObject*>(&r.object());
            if (object && &object->cache() == &cache && object->ever_writable()) {
                may_be_dirty = true;
                dirty_evictable = object->tracks_writes() && !object->async_write_tracking();
            }
        });
    }
    if (may_be_dirty && !dirty_evictable)
        return 0;
    const bool clock = config_.eviction_policy == EvictionPolicy::Clock;
    std::vector<size_t> victims, referenced;
    // Each page is looked at most twice per call (a second chance, then
    // its turn), so a list of pinned or referenced pages ends the call.
    size_t looks = 2 * list->size() + 1;
    while (victims.size() < want && looks-- > 0) {
        size_t page;
        if (!list->rotate_front(page))
            break;
        if (states.get(page) != PageState::Present) {
            list->remove(page); // dropped by other means (sync, discard)
            continue;
        }
        if (clock && list->clear_referenced(page)) {
            referenced.push_back(page);
            continue;
        }
        if (list->begin_evict(page))
            victims.push_back(page);
    }
    if (!referenced.empty()) {
        // Second chance: unmap from the shared views (the page stays
        // cached), so that the next touch tells us it is still in use.
        std::sort(referenced.begin(), referenced.end());
        std::shared_lock tree(tree_.lock());
        for (size_t page : referenced) {
            list->set_zapped(page);
            for_each_shared_view(cache, page, 1, [&](uintptr_t address, size_t bytes) {
                (void)madvise(reinterpret_cast<void*>(address), bytes, MADV_DONTNEED);
            });
        }
    }
    if (victims.empty())
        return 0;
    std::sort(victims.begin(), victims.end());
    // From the dirty bits to the drops, no sync or unmap writes this cache
    // (FileCache::writeback_lock).
    std::lock_guard writing(cache.writeback_lock());
    std::vector<size_t> dirty;
    for (size_t page : victims)
        if (cache.dirty(page))
            dirty.push_back(page);
    std::vector<bool> failed(victims.size(), false);
    if (!dirty.empty()) {
        // Clear, then re-protect, then write — sync's order. A write-protect
        // fault lifts and then marks, so with this order a page that is
        // writable anywhere is always dirty: had we protected first, a
        // fault's lift and mark could fall between our protect and our
        // clear and leave the page writable and clean, and a later eviction
        // would drop it without writing what was written since. A write
        // from the protect on faults, and its pin cancels this eviction.
        for (size_t page : dirty)
            cache.begin_writeback(page);
        {
            std::shared_lock tree(tree_.lock());
            for (size_t page : dirty)
                for_each_shared_view(cache, page, 1, [&](uintptr_t address, size_t bytes) {
                    long rc = uffd_.writeprotect(address, bytes, true, false);
                    if (rc < 0 && rc != -ENOENT)
                        log::warn("evictor: write-protecting {:#x} failed: {}", address, strerror(int(-rc)));
                });
        }
        const uint64_t size = cache.refresh_size();
        for (size_t i = 0; i < dirty.size();) {
            size_t run = 1;
            while (i + run < dirty.size() && dirty[i + run] == dirty[i] + run && run < 256)
                ++run;
            const bool written = write_back(cache, dirty[i], run, size);
            for (size_t k = 0; k < run; ++k)
                cache.end_writeback(dirty[i + k], written);
            if (!written) {
                // The pages stay, dirty, for the next sync or pass.
                cache.counters().eviction_write_errors.fetch_add(run, std::memory_order_relaxed);
                for (size_t k = 0; k < run; ++k) {
                    auto at = std::lower_bound(victims.begin(), victims.end(), dirty[i + k]);
                    failed[size_t(at - victims.begin())] = true;
                }
            }
            i += run;
        }
    }
    size_t dropped = 0;
    for (size_t k = 0; k < victims.size(); ++k) {
        const size_t page = victims[k];
        // A fault pinned the page since, or a write re-dirtied it (its pin
        // came and went): it stays.
        if (failed[k] || cache.dirty(page) || !list->commit_evict(page)) {
            list->end_evict(page);
            continue;
        }
        const bool was_dirty = std::binary_search(dirty.begin(), dirty.end(), page);
        cache.evict_drop(page);
        list->end_evict(page);
        (was_dirty ? cache.counters().evictions_dirty : cache.counters().evictions_clean)
            .fetch_add(1, std::memory_order_relaxed);
        ++dropped;
    }
    return dropped;
}

void Evictor::run() noexcept
{
    begin_runtime_thread("faultline-evict");
    size_t next = 0;
    for (;;) {
        {
            std::unique_lock g(lock_);
            // The timeout is a safety net only: every charge above a high
            // mark and every parked fault wakes the thread.
            wakeup_.wait_for(g, std::chrono::milliseconds(100), [&] { return stopping_ || woken_; });
            if (stopping_)
                return;
            woken_ = false;
        }
        // The pass holds pass_lock_: caches are added and removed only
        // between passes (API threads wait for the pass; handlers never take
        // this lock).
        std::unique_lock pass(pass_lock_);
        auto& caches = caches_;
        if (caches.empty() && swaps_.empty())
            continue;
        const size_t batch = config_.eviction_batch_pages;
        // Nothing could go while faults wait. Pages being read (charged,
        // not yet evictable) and pins end by themselves: try again shortly.
        // Only a budget whose every page stays put pass after pass (dirty
        // pages whose write-back fails) is opened, so that no fault waits
        // for ever (the overrun; docs/design.md).
        bool again = false;
        auto stalled = [&](bool reading) {
            const auto now = std::chrono::steady_clock::now();
            if (!reading && stalled_passes_++ == 0)
                stalled_since_ = now;
            if (reading || stalled_passes_ < kStalledPassesBeforeOverrun
                || now - stalled_since_ < kStalledTimeBeforeOverrun) {
                again = true;
                return false;
            }
            return true;
        };
        // Caches over budgets of their own first, then the runtime's.
        for (auto& cache : caches) {
            memory::PageBudget* own = cache->own_budget();
            if (!own || !(own->over_high() || own->waiters()))
                continue;
            bool progress = false, stuck = false;
            while (own->above_low()) {
                if (evict(*cache, std::min(batch, own->resident() - own->low())) == 0) {
                    stuck = true;
                    break;
                }
                progress = true;
                stalled_passes_ = 0;
                own->set_overrun(false);
                own->release_waiters();
            }
            if (stuck && !progress && own->waiters() && stalled(cache->reads_in_flight() > 0))
                own->set_overrun(true);
            if (progress || own->overrun() || !own->above_low())
                own->release_waiters();
        }
        memory::PageBudget* global = budget_.get();
        if (global && (global->over_high() || global->waiters())) {
            // Round robin over the caches, a batch each, until the low mark.
            size_t idle = 0;
            bool progress = false;
            // File caches and swap-backed objects take turns.
            const size_t sources = caches.size() + swaps_.size();
            while (global->above_low() && idle < sources) {
                const size_t at = next++ % sources;
                const size_t want = std::min(batch, global->resident() - global->low());
                const size_t freed = at < caches.size() ? evict(*caches[at], want)
                                                        : swap_out_.evict(*swaps_[at - caches.size()], want);
                if (freed == 0) {
                    ++idle;
                    continue;
                }
                idle = 0;
                progress = true;
                stalled_passes_ = 0;
                global->set_overrun(false);
                global->release_waiters();
            }
            if (!progress && global->above_low() && global->waiters()) {
                bool reading = false;
                for (auto& cache : caches)
                    reading = reading || cache->reads_in_flight() > 0;
                // Swap-ins in flight are charged already and end by
                // themselves; a full swap does not (the overrun then lets
                // faults through).
                if (stalled(reading))
                    global->set_overrun(true);
            }
            if (progress || global->overrun() || !global->above_low())
                global->release_waiters();
        }
        if (again) {
            pass.unlock();
            std::this_thread::sleep_for(std::chrono::microseconds(500));
            std::lock_guard g(lock_);
            woken_ = true;
        }
    }
}

} // namespace faultline
