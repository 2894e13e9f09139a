// umap/umap_config.h — umap's configuration from its environment variables,
// and the faultline settings it becomes (docs/umap.md, "Environment").
//
// umap reads UMAP_* once, when the library is first used; so does this. As
// in umap, a variable that is unset or 0 takes the default. Unlike umap, a
// value that cannot work (not a number, a page size that is not a multiple
// of the system's, watermarks out of order) is not fatal: it is remembered as
// an error and umap()/umap_ex() fail with it, while the getters report the
// values as read.
#pragma once

#include <faultline/result.h>
#include <faultline/runtime.h>

#include <cstdint>
#include <optional>
#include <string>

namespace faultline::umap {

class UmapConfig {
public:
    // Reads the UMAP_* variables now.
    static UmapConfig from_environment();

    uint64_t system_page_size = 0;
    uint64_t page_size = 0;          // UMAP_PAGESIZE (bytes)
    uint64_t max_fault_events = 0;   // UMAP_MAX_FAULT_EVENTS
    uint64_t fillers = 0;            // UMAP_PAGE_FILLERS
    uint64_t evictors = 0;           // UMAP_PAGE_EVICTORS
    uint64_t pages_in_buffer = 0;    // UMAP_BUFSIZE (umap pages)
    uint64_t read_ahead = 0;         // UMAP_READ_AHEAD (umap pages)
    int evict_high_percent = 0;      // UMAP_EVICT_HIGH_WATER_THRESHOLD
    int evict_low_percent = 0;       // UMAP_EVICT_LOW_WATER_THRESHOLD

    // The first variable that cannot be used (EINVAL and a sentence), if any.
    const std::optional<Error>& problem() const noexcept { return problem_; }

    // The runtime these values ask for (arena_size is left to the caller).
    Config runtime_config() const;
    // Pages a fault reads at least and a sequential stream at most (system
    // pages, for FileMapOptions / StoreMapOptions).
    unsigned readahead_min_pages() const;
    unsigned readahead_max_pages() const;
    // Threads that call a Umap::Store (StoreMapOptions::threads).
    unsigned store_threads() const;

private:
    std::optional<Error> problem_;
};

} // namespace faultline::umap
