#include "runtime/mapping_reaper.h"

#include "os/virtual_memory.h"
#include "runtime/fork_preparation.h"
#include "support/runtime_thread.h"
#include "support/log.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <new>
#include <sys/mman.h>
#include <system_error>

namespace faultline {

namespace {

// Every reaper, for the fork handlers. Never destroyed: atfork handlers
// outlive static destruction.
struct Registry {
    std::mutex lock;
    std::vector<MappingReaper*> all;
};

Registry& registry()
{
    static auto* r = new Registry;
    return *r;
}

} // namespace

MappingReaper::MappingReaper(bool enabled) noexcept
    : enabled_(enabled)
{
    // Last of the stages: the reapers' locks are leaves, so holding them
    // across the fork after the API locks and the evictors' registry cannot
    // invert any order (runtime/fork_preparation.h).
    install_fork_handlers(ForkStage::Reaper, { prepare_fork_all, parent_after_fork_all, child_after_fork_all });
    Registry& r = registry();
    std::lock_guard g(r.lock);
    try {
        r.all.push_back(this);
    } catch (const std::bad_alloc&) {
        // Unregistered, a reaper's queue could be inherited by a fork child:
        // such a reaper never queues (see enqueue()).
        log::warn("mapping reaper: out of memory registering for fork; page tables are torn down in the call");
        enabled_ = false;
    }
}

MappingReaper::~MappingReaper()
{
    {
        Registry& r = registry();
        std::lock_guard g(r.lock);
        r.all.erase(std::remove(r.all.begin(), r.all.end(), this), r.all.end());
    }
    {
        std::lock_guard g(lock_);
        stopping_ = true;
    }
    wakeup_.notify_all();
    // The thread unmaps what is queued before it ends.
    if (thread_.joinable())
        thread_.join();
}

int MappingReaper::replace(uintptr_t addr, size_t len, int prot, int type, int fd, size_t offset) noexcept
{
    if (enabled_) {
        // Fails with EINVAL when the range is more than one mapping (pieces
        // of the arena with different histories that did not merge) and
        // with ENOMEM at the limit on mappings: then the remap below tears
        // the old entries down itself, as on kernels without the move.
        if (long aside = os::move_page_tables_aside(addr, len); aside >= 0) {
            // The range still maps the same memfd pages, only without
            // entries: whatever happens next, it shows the same bytes.
            int rc = os::remap_fd_fixed_keeping_contents(addr, len, prot, type, fd, offset);
            Range moved { uintptr_t(aside), len };
            if (!enqueue(moved))
                (void)os::unmap(moved.addr, moved.len);
            return rc;
        }
    }
    return os::remap_fd_fixed_keeping_contents(addr, len, prot, type, fd, offset);
}

bool MappingReaper::enqueue(Range r) noexcept
{
    std::lock_guard g(lock_);
    if (!thread_.joinable()) {
        auto started = start_runtime_thread("mapping reaper", [this] { run(); });
        if (!started) {
            log::warn("{}; page tables are torn down in the call", started.error().message());
            return false;
        }
        thread_ = std::move(*started);
    }
    try {
        queue_.push_back(r);
    } catch (const std::bad_alloc&) {
        return false;
    }
    pending_bytes_ += r.len;
    ++moved_;
    wakeup_.notify_one();
    return true;
}

void MappingReaper::run() noexcept
{
    begin_runtime_thread("faultline-reap");
    std::unique_lock l(lock_);
    for (;;) {
        wakeup_.wait(l, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty())
            return;
        Range r = queue_.back();
        queue_.pop_back();
        unmapping_ = true;
        l.unlock();
        // The whole cost the caller of replace() did not wait for: one
        // entry at a time, a page reference and a reverse-map count each.
        if (int rc = os::unmap(r.addr, r.len); rc < 0)
            log::error("mapping reaper: munmap({:#x}, {:#x}) failed: {}", r.addr, r.len, strerror(-rc));
        l.lock();
        unmapping_ = false;
        pending_bytes_ -= r.len;
        idle_.notify_all();
    }
}

void MappingReaper::drain() noexcept
{
    std::unique_lock l(lock_);
    idle_.wait(l, [&] { return queue_.empty() && !unmapping_; });
}

size_t MappingReaper::pending_bytes() const noexcept
{
    std::lock_guard g(lock_);
    return pending_bytes_;
}

uint64_t MappingReaper::moved() const noexcept
{
    std::lock_guard g(lock_);
    return moved_;
}

void MappingReaper::prepare_fork_all() noexcept
{
    Registry& r = registry();
    r.lock.lock();
    for (MappingReaper* m : r.all)
        m->prepare_fork();
}

void MappingReaper::parent_after_fork_all() noexcept
{
    Registry& r = registry();
    for (MappingReaper* m : r.all)
        m->parent_after_fork();
    r.lock.unlock();
}

void MappingReaper::child_after_fork_all() noexcept
{
    Registry& r = registry();
    for (MappingReaper* m : r.all)
        m->child_after_fork();
    r.lock.unlock();
}

void MappingReaper::prepare_fork() noexcept
{
    // A range being unmapped is in neither the queue nor unmapped yet: wait
    // for it (one teardown at most), so that the child knows every moved
    // range it inherits. Held until the fork returned.
    std::unique_lock l(lock_);
    idle_.wait(l, [&] { return !unmapping_; });
    (void)l.release();
}

void MappingReaper::parent_after_fork() noexcept { lock_.unlock(); }

void MappingReaper::child_after_fork() noexcept
{
    // The child has no reaper thread (only the forking thread comes along)
    // and inherited every queued range: unmapped here, at once. fork() did
    // not copy their entries (shared mappings refault instead), so each is
    // a cheap munmap.
    for (const Range& r : queue_)
        (void)os::unmap(r.addr, r.len);
    queue_.clear();
    pending_bytes_ = 0;
    // The handles and condition variables name the parent's thread and
    // waiters: overwritten with fresh ones, neither joined nor destroyed.
    new (&thread_) std::thread();
    new (&wakeup_) std::condition_variable();
    new (&idle_) std::condition_variable();
    lock_.unlock();
}

} // namespace faultline
