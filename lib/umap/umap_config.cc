#include "umap/umap_config.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unistd.h>

namespace faultline::umap {

namespace {

// umap's defaults (umap 2.1): 256 events per read of the userfaultfd, one
// filler and one evictor per hardware thread (16 when unknown), eviction
// from 90% full down to 70%, the system page, no read-ahead, and a buffer of
// 90% of the free memory.
constexpr uint64_t kDefaultMaxFaultEvents = 256;
constexpr int kDefaultHighPercent = 90;
constexpr int kDefaultLowPercent = 70;
constexpr uint64_t kBufferPercentOfFree = 90;
// The most faultline reads per fault (FileMapOptions readahead limits).
constexpr uint64_t kMaxReadaheadPages = 4096;
constexpr unsigned kMaxStoreThreads = 64;
constexpr unsigned kDefaultReadaheadMaxPages = 256;

// MemFree in KiB, as umap sizes its default buffer (0 if unreadable).
uint64_t mem_free_kib()
{
    FILE* f = fopen("/proc/meminfo", "re");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemFree: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

} // namespace

UmapConfig UmapConfig::from_environment()
{
    UmapConfig c;
    auto complain = [&](const char* name, const char* why) {
        if (!c.problem_)
            c.problem_ = Error::format(EINVAL, "%s %s", name, why);
    };
    // Unset or 0 means "the default", as in umap; text that is not a whole
    // number is an error here (umap would read garbage).
    auto read = [&](const char* name, uint64_t fallback) -> uint64_t {
        const char* text = std::getenv(name);
        if (!text || !*text)
            return fallback;
        char* end = nullptr;
        errno = 0;
        const unsigned long long v = strtoull(text, &end, 10);
        if (errno || *end || text[0] == '-') {
            complain(name, "is not a non-negative whole number");
            return fallback;
        }
        return v ? v : fallback;
    };

    c.system_page_size = uint64_t(sysconf(_SC_PAGESIZE));
    unsigned hw = std::thread::hardware_concurrency();
    hw = hw ? hw : 16;
    c.max_fault_events = read("UMAP_MAX_FAULT_EVENTS", kDefaultMaxFaultEvents);
    c.fillers = read("UMAP_PAGE_FILLERS", hw);
    c.evictors = read("UMAP_PAGE_EVICTORS", hw);
    const uint64_t high = read("UMAP_EVICT_HIGH_WATER_THRESHOLD", kDefaultHighPercent);
    const uint64_t low = read("UMAP_EVICT_LOW_WATER_THRESHOLD", kDefaultLowPercent);
    c.evict_high_percent = int(std::min<uint64_t>(high, 1000));
    c.evict_low_percent = int(std::min<uint64_t>(low, 1000));
    if (high > 100)
        complain("UMAP_EVICT_HIGH_WATER_THRESHOLD", "is a percentage: at most 100");
    else if (low >= high)
        complain("UMAP_EVICT_LOW_WATER_THRESHOLD", "must be below UMAP_EVICT_HIGH_WATER_THRESHOLD");
    c.page_size = read("UMAP_PAGESIZE", c.system_page_size);
    if (c.page_size % c.system_page_size)
        complain("UMAP_PAGESIZE", "must be a multiple of the system page size");
    else if (c.page_size & (c.page_size - 1))
        complain("UMAP_PAGESIZE", "must be a power of two (umap aligns regions to it)");
    else if (c.page_size / c.system_page_size > kMaxReadaheadPages)
        complain("UMAP_PAGESIZE", "is larger than the most faultline reads at once (4096 system pages)");
    const uint64_t default_pages = mem_free_kib() * 1024 / std::max<uint64_t>(c.page_size, 1)
        * kBufferPercentOfFree / 100;
    c.pages_in_buffer = read("UMAP_BUFSIZE", std::max<uint64_t>(default_pages, 1));
    c.read_ahead = read("UMAP_READ_AHEAD", 0);
    return c;
}

Config UmapConfig::runtime_config() const
{
    Config rc;
    // UMAP_BUFSIZE umap pages of file or store data may stay resident: the
    // runtime-wide budget. Saturates instead of wrapping for absurd values.
    const uint64_t page = std::max<uint64_t>(page_size, 1);
    rc.memory_budget = pages_in_buffer > UINT64_MAX / page ? UINT64_MAX : pages_in_buffer * page;
    rc.budget_high_percent = unsigned(std::clamp(evict_high_percent, 1, 100));
    rc.budget_low_percent = unsigned(std::clamp(evict_low_percent, 1, 99)); // the runtime needs 0 < low < high
    // The budget must hold one eviction batch; a small UMAP_BUFSIZE gets
    // small batches (an eighth of the buffer) so it is still honoured.
    const uint64_t budget_pages = rc.memory_budget / std::max<uint64_t>(system_page_size, 1);
    rc.eviction_batch_pages = unsigned(std::clamp<uint64_t>(budget_pages / 8, 1, rc.eviction_batch_pages));
    return rc;
}

unsigned UmapConfig::readahead_min_pages() const
{
    // A fault reads its whole umap page plus UMAP_READ_AHEAD umap pages.
    const uint64_t per_page = std::max<uint64_t>(page_size / std::max<uint64_t>(system_page_size, 1), 1);
    const uint64_t want = per_page * (1 + std::min<uint64_t>(read_ahead, kMaxReadaheadPages));
    return unsigned(std::min(want, kMaxReadaheadPages));
}

unsigned UmapConfig::readahead_max_pages() const
{
    return std::max(readahead_min_pages(), kDefaultReadaheadMaxPages);
}

unsigned UmapConfig::store_threads() const
{
    return unsigned(std::clamp<uint64_t>(fillers, 1, kMaxStoreThreads));
}

} // namespace faultline::umap
