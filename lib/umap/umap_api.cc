// The umap 2.1 entry points (include/umap/umap.h): each turns the service's
// Result into umap's return conventions — UMAP_FAILED or -1 with errno set,
// never abort() — and lets no exception out into C callers.
#include "support/try.h"
#include "umap/umap_service.h"

#include <umap/umap.h>

#include <cerrno>
#include <new>
#include <unistd.h>

using faultline::umap::UmapService;

namespace {

// Runs fn; on failure sets errno and returns false.
template <typename Fn>
bool attempt(Fn&& fn) noexcept
{
    try {
        auto r = fn();
        if (r)
            return true;
        errno = r.error().code();
    } catch (const std::bad_alloc&) {
        errno = ENOMEM;
    } catch (...) {
        errno = EIO;
    }
    return false;
}

const faultline::umap::UmapConfig& config() { return UmapService::instance().config(); }

} // namespace

void* Umap::umap_ex(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset, Store* store)
{
    void* mapped = UMAP_FAILED;
    attempt([&]() -> faultline::Result<void> {
        mapped = TRY(UmapService::instance().map(addr, length, prot, flags, fd, offset, store));
        return {};
    });
    return mapped;
}

extern "C" {

void* umap(void* addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    return Umap::umap_ex(addr, length, prot, flags, fd, offset, nullptr);
}

int uunmap(void* addr, size_t length)
{
    (void)length; // umap unmaps the whole region at addr (docs/umap.md)
    return attempt([&] { return UmapService::instance().unmap(addr); }) ? 0 : -1;
}

int umap_flush(void) { return attempt([] { return UmapService::instance().flush(); }) ? 0 : -1; }

int umap_has_write_support(void) { return 1; }

void umap_prefetch(int npages, struct umap_prefetch_item* page_array)
{
    (void)attempt([&] { return UmapService::instance().prefetch(npages, page_array); });
}

void umap_fetch_and_pin(char* paddr, uint64_t size)
{
    (void)attempt([&] { return UmapService::instance().fetch(paddr, size); });
}

long umapcfg_get_system_page_size(void) { return long(config().system_page_size); }
uint64_t umapcfg_get_umap_page_size(void) { return config().page_size; }
uint64_t umapcfg_get_max_fault_events(void) { return config().max_fault_events; }
uint64_t umapcfg_get_num_fillers(void) { return config().fillers; }
uint64_t umapcfg_get_num_evictors(void) { return config().evictors; }
uint64_t umapcfg_get_max_pages_in_buffer(void) { return config().pages_in_buffer; }
uint64_t umapcfg_get_read_ahead(void) { return config().read_ahead; }
int umapcfg_get_evict_low_water_threshold(void) { return config().evict_low_percent; }
int umapcfg_get_evict_high_water_threshold(void) { return config().evict_high_percent; }

} // extern "C"
