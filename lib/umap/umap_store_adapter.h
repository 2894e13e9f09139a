// umap/umap_store_adapter.h — a Umap::Store seen as a faultline::Store.
//
// umap calls read_from_store/write_to_store once per umap page, and stores
// written for it may count on that (one compressed block per page, say).
// faultline reads several pages at once and writes back runs of dirty system
// pages; this adapter cuts every call at umap page boundaries so a store sees
// at most one umap page per call, as in umap. A Umap::Store has no size: the
// store ends where the region does (offset + length), which is also where
// umap stops asking.
#pragma once

#include <faultline/store.h>
#include <umap/store/Store.hpp>

#include <shared_mutex>

namespace faultline::umap {

class UmapStoreAdapter final : public faultline::Store {
public:
    // `store` is the application's (it outlives the region: umap's rule).
    UmapStoreAdapter(Umap::Store* store, uint64_t end, uint64_t umap_page_size) noexcept
        : store_(store)
        , end_(end)
        , page_(umap_page_size)
    {
    }

    uint64_t size() noexcept override { return end_; }
    int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept override;
    bool writable() const noexcept override { return true; }
    int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept override;

    // After uunmap: waits for the calls of the application's store in
    // progress, and makes later ones fail (-EIO) without calling it. The
    // runtime may still hold this adapter when unmap returns — a readahead
    // read in flight holds the region's cache until it completes — but umap
    // lets the application delete its store as soon as uunmap returns.
    // (Found by the umap fuzz target: a store thread called the deleted
    // store.)
    void detach() noexcept;

private:
    std::shared_mutex lock_; // shared by the calls, exclusive for detach
    Umap::Store* store_;
    const uint64_t end_;
    const uint64_t page_;
};

} // namespace faultline::umap
