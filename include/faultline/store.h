// faultline/store.h — page stores: where a store region's pages come from
// and go back to.
//
// A store region (Runtime::map_store) behaves like a shared file region whose
// file is the store: a page is read from the store on first touch, written
// back on sync, on eviction under a memory budget and on unmap, and every
// region of one store sees every other's writes at once (one cache per store
// object). The runtime's own file store is io_uring on a file; this interface
// is how users bring theirs (pages generated on demand, a compressed file, a
// remote server).
//
// Threads: read() runs on the region's store threads (StoreMapOptions::
// threads of them), never on a fault-handler thread, so a slow or blocking
// store delays only the faults waiting for its pages — the handler answers
// those faults "pending" and keeps serving every other. write() and flush()
// run on the thread that syncs, unmaps or evicts. Several reads may run at
// once (one per store thread) and a write may run beside them, on other
// pages: a store whose calls are not thread-safe says so with threads = 1
// and does its own locking for writes.
//
// Errors: a read that fails (or is short inside the store) raises SIGBUS in
// the faulting threads and nowhere else; a write that fails leaves the pages
// dirty and resident, and sync() returns the error. The runtime never
// retries on its own.
#pragma once

#include <faultline/export.h>
#include <faultline/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

namespace faultline {

class FAULTLINE_API Store {
public:
    virtual ~Store() = default;

    // The store's size in bytes. Pages wholly past it raise SIGBUS; a short
    // last page reads zeros past it. Asked when a region is mapped or synced
    // and after every read, on those threads — never on a fault handler, so
    // a fault past the size last seen raises SIGBUS without asking.
    virtual uint64_t size() noexcept = 0;
    // Reads `bytes` (whole pages) at `offset` (page-aligned) into `buffer`.
    // Returns the bytes read — fewer only where the store ends — or -errno.
    virtual int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept = 0;
    // True if write() can store pages: regions with write access need it.
    virtual bool writable() const noexcept { return false; }
    // Writes `bytes` at `offset` (page-aligned; never past size()). Returns
    // the bytes written or -errno.
    virtual int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept
    {
        (void)buffer, (void)bytes, (void)offset;
        return -EROFS;
    }
    // Makes what write() stored durable (sync with SyncFlags::Sync). 0 or
    // -errno.
    virtual int flush() noexcept { return 0; }
};

// How a store region is mapped (Runtime::map_store).
struct StoreMapOptions {
    size_t length = 0;            // bytes from `offset`, > 0; rounded up to whole pages
    int64_t offset = 0;           // store offset, a multiple of the page size, >= 0
    void* address = nullptr;      // non-null: place exactly here (must lie in the arena)
    Access access = Access::Read; // Write needs Store::writable()
    std::string name;
    unsigned readahead_min_pages = 0; // as FileMapOptions (0 = defaults)
    unsigned readahead_max_pages = 0;
    // Threads that call Store::read for this store (0 = 2). Taken from the
    // first region of a store; later regions share them.
    unsigned threads = 0;
    // Bytes of this region's pages that may stay resident (0 = only the
    // runtime's Config::memory_budget applies).
    uint64_t budget = 0;
};

} // namespace faultline
