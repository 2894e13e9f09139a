// runtime/file_regions.h — file regions: validating a mapping the way
// mmap(2) does, one cache per file, and writing dirty pages back.
//
// map(): checks the descriptor and the options (docs/api.md, "map_file"),
// opens the runtime's own descriptor of the file, finds or creates the
// file's FileCache (one per device and inode), and maps a region viewing the
// file's SharedInodeVMObject (one per file) or a new PrivateInodeVMObject.
//
// sync(): for the shared file regions over a range, the dirty pages (every
// cached page where writes are not tracked) are re-protected in every shared
// region that maps them, *then* written to the file — a write racing the
// sync faults and dirties its page again, so it is never lost — in batches
// with io_uring, never past the end of the file; fdatasync for SyncFlags::
// Sync. A page whose write fails stays dirty and the error is returned.
//
// Callers hold the runtime's API lock.
#pragma once

#include "io/ring.h"
#include "memory/objects/file_cache.h"
#include "memory/objects/shared_inode_vm_object.h"
#include "memory/region_tree.h"
#include "os/features.h"
#include "os/pagemap.h"
#include "runtime/evictor.h"
#include "runtime/file_fork_plan.h"
#include "runtime/mapper.h"
#include "runtime/region_operations.h"
#include "uffd/userfaultfd.h"

#include <faultline/result.h>
#include <faultline/types.h>

#include <functional>
#include <map>
#include <tuple>
#include <memory>
#include <utility>

namespace faultline {

class FileRegions {
public:
    FileRegions(Mapper& mapper, RegionOperations& ops, memory::RegionTree& tree, uffd::Userfaultfd& uffd,
        const os::FeatureSet& features, size_t page_size, bool allow_write_execute, Evictor& evictor) noexcept
        : mapper_(mapper)
        , ops_(ops)
        , tree_(tree)
        , uffd_(uffd)
        , features_(features)
        , page_(page_size)
        , allow_write_execute_(allow_write_execute)
        , evictor_(evictor)
    {
    }
    ~FileRegions();
    // Called before the first shared file region that tracks writes
    // asynchronously is registered: starts the fault service of that
    // userfaultfd (only programs that map such regions pay its threads).
    void on_first_async(std::function<Result<void>()> start) { start_async_ = std::move(start); }

    Result<void*> map(int fd, const FileMapOptions& options);
    // A store region: a shared view of the store's cache (one per store).
    Result<void*> map_store(std::shared_ptr<Store> store, const StoreMapOptions& options);
    Result<void> sync(uintptr_t address, size_t size, SyncFlags flags);
    // A shared file region leaving the runtime: writes its dirty pages back
    // (errors are logged: there is nobody to return them to; the file is
    // then kept, with its dirty pages, until a later write-back succeeds).
    void retire(memory::Region& region);
    // Every writable shared file region (runtime destruction).
    void sync_all();
    // Waits until no read of any file or store is in flight — readahead
    // included, which no fault waits for (runtime destruction, while the
    // handler threads still reap io_uring completions).
    void wait_for_reads() const noexcept;
    // Forgets files no region views any more — but for one whose dirty
    // pages could not be written at an unmap, which it tries to write
    // again first.
    void prune();
    // fork() (runtime/file_fork_plan.h): writes every shared file's dirty
    // pages back and records how a child remaps each file region. The
    // caller holds the API lock until after_fork_in_parent/child().
    void prepare_fork() noexcept;
    void after_fork_in_parent() noexcept { fork_plan_.clear(); }
    void after_fork_in_child() noexcept { (void)fork_plan_.apply(page_); }
    // In a fork child: the write-back ring's queues are shared with the
    // parent (io_uring maps them); never drain or close it here.
    void abandon() noexcept
    {
        (void)ring_.release();
        for (auto& [key, file] : files_)
            file.cache->abandon_store();
    }

private:
    // A file is its (device, inode); a store is its object's address.
    using Key = std::tuple<dev_t, ino_t, const Store*>;
    struct File {
        boost::intrusive_ptr<memory::FileCache> cache;
        boost::intrusive_ptr<memory::SharedInodeVMObject> shared; // created with the first shared region
        // An unmap's write-back failed: the cache may hold the only copy of
        // written pages, which no region may view any more.
        bool unwritten = false;
    };
    // A region over a file's or store's cache.
    struct View {
        bool shared = true;
        uint64_t offset = 0;
        size_t size = 0;
        void* address = nullptr;
        Access access = Access::Read;
        Access max_access = Access::Read;
        std::string name;
        std::pair<unsigned, unsigned> readahead;
        uint64_t budget = 0;
    };
    Result<void*> map_view(File& file, const View& view);
    static Result<std::pair<unsigned, unsigned>> readahead_limits(unsigned min, unsigned max);
    // Checks a view's access bits, length and offset as mmap(2) does;
    // returns the length rounded up to whole pages.
    Result<size_t> window_size(Access access, size_t length, int64_t offset) const;
    memory::FileCache::Options cache_options(bool direct_io, bool budgeted) const;
    // Under a budget: checks that the cache can evict what this view may
    // write, and makes it evictable.
    Result<void> apply_budget(File& file, bool writes, uint64_t budget);
    // fdatasync, or the store's flush: 0 or an errno.
    static int flush(memory::FileCache& cache);
    // Writes the dirty pages of file pages [first, end) of `object`.
    Result<void> write_back(memory::SharedInodeVMObject& object, size_t first, size_t end, memory::Region* retired = nullptr);
    // Write-protects file pages [first, first+count) in every shared
    // region of `object` that maps them.
    void protect_everywhere(const memory::SharedInodeVMObject& object, size_t first, size_t count);
    // Asynchronous tracking: collects the pages of [first, end) the kernel
    // marked written in every shared region of `object` (re-protecting them
    // in the same step) into the cache's dirty bits. `also` is a retired
    // region (already out of the tree) to collect from too.
    void harvest(memory::SharedInodeVMObject& object, size_t first, size_t end, memory::Region* also = nullptr);
    Result<void> write_run(memory::FileCache& cache, size_t first, size_t count, uint64_t file_size);
    // The pages of `object` that differ from the file (dirty, or every
    // cached page where writes are not tracked), as runs.
    std::vector<FileForkPlan::Run> unwritten_runs(memory::SharedInodeVMObject& object);

    Mapper& mapper_;
    RegionOperations& ops_;
    memory::RegionTree& tree_;
    uffd::Userfaultfd& uffd_;
    const os::FeatureSet& features_;
    size_t page_;
    bool allow_write_execute_;
    Evictor& evictor_;
    std::map<Key, File> files_;
    std::unique_ptr<io::Ring> ring_; // write-back I/O (API threads), created on first use
    std::unique_ptr<os::Pagemap> pagemap_; // PAGEMAP_SCAN for asynchronous tracking, opened on first use
    std::function<Result<void>()> start_async_;
    FileForkPlan fork_plan_; // between prepare_fork() and the fork's return
};

} // namespace faultline
