// umap/umap_service.h — the process-wide state behind the umap API: the
// configuration read from UMAP_* at first use, one faultline Runtime created
// at the first umap(), and the table of umap regions.
//
// umap keeps one buffer and one set of workers for the whole process, and
// programs written for it expect that (a budget for all regions together,
// one umap_flush for all); so this is a singleton, created on first use and
// destroyed at exit (which writes back what is still mapped).
//
// Every call takes one lock: umap calls are rare next to page faults, and
// holding it while prefetching keeps uunmap() from pulling a region out
// from under a prefetch.
#pragma once

#include "umap/umap_config.h"

#include <faultline/result.h>
#include <faultline/runtime.h>
#include <umap/umap.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

namespace faultline::umap {

class UmapStoreAdapter;

class UmapService {
public:
    static UmapService& instance();

    const UmapConfig& config() const noexcept { return config_; }

    // umap_ex(): a file region of `fd`, or a store region of `store`.
    Result<void*> map(void* address, size_t length, int prot, int flags, int fd, off_t offset, Umap::Store* store);
    // uunmap(): writes the region starting at `address` back, then unmaps it.
    Result<void> unmap(void* address);
    // umap_flush(): writes every writable region back and waits for it.
    Result<void> flush();
    // umap_prefetch() / umap_fetch_and_pin(): read pages in by touching them
    // on this thread (the faults read ahead as configured).
    Result<void> prefetch(int npages, const umap_prefetch_item* items);
    Result<void> fetch(const char* address, uint64_t size);

    // The runtime, once the first umap() has created it (tests look at its
    // statistics); null before.
    Runtime* runtime_if_created();

private:
    struct Mapping {
        size_t size;
        bool readable; // prefetching touches pages: not in a PROT_NONE region
        bool writable;
        std::shared_ptr<UmapStoreAdapter> store; // umap_ex's; null for a file
    };

    UmapService();
    ~UmapService();
    Result<Runtime*> runtime();
    // The umap region containing [address, address + size), or end().
    std::map<uintptr_t, Mapping>::const_iterator find(uintptr_t address, size_t size) const;
    // Touches every system page of [address, address + size) (read only).
    void touch(uintptr_t address, size_t size) const;

    std::mutex lock_;
    const UmapConfig config_;
    std::unique_ptr<Runtime> runtime_;
    std::map<uintptr_t, Mapping> regions_; // base -> region
};

} // namespace faultline::umap
