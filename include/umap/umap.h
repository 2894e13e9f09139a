/* umap/umap.h — the umap 2.1 API on faultline (libfaultline-umap).
 *
 * A program written for LLNL umap compiles unchanged against this header and
 * links with `pkg-config --libs faultline-umap`. docs/umap.md lists every
 * difference from umap; the two that matter most:
 *
 *  - UMAP_PRIVATE (umap's only mode) is a shared file mapping: written pages
 *    go back to the file (or store) on eviction, umap_flush() and uunmap().
 *    It is not mmap(2)'s MAP_PRIVATE.
 *  - Errors are returned, never abort(): umap() returns UMAP_FAILED and the
 *    int functions -1, with errno set; the void ones set errno.
 *
 * The UMAP_* environment variables are read once, at the first call of any
 * function here; the first umap() creates one faultline runtime for the
 * process from them.
 */
#ifndef FAULTLINE_UMAP_UMAP_H
#define FAULTLINE_UMAP_UMAP_H

#ifdef __cplusplus
#include <cstddef>
#include <cstdint>
#include <umap/store/Store.hpp>
#else
#include <stddef.h>
#include <stdint.h>
#endif

#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef UMAP_API
#define UMAP_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
namespace Umap {
/* As umap(), with the pages read from and written to `store` instead of the
 * file `fd` (which is then ignored); a null store maps `fd`. The store must
 * stay alive until the region is uunmap()ed. */
UMAP_API void* umap_ex(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset, Store* store);
} // namespace Umap

extern "C" {
#endif

/* Maps `length` bytes (a multiple of the umap page size) of the file `fd`
 * from `offset`. `flags` must hold UMAP_PRIVATE and may add UMAP_FIXED (then
 * `addr` is where the region goes); `prot` is PROT_READ and/or PROT_WRITE.
 * Returns the region or UMAP_FAILED with errno set. */
UMAP_API void* umap(void* addr, size_t length, int prot, int flags, int fd, off_t offset);

/* Writes the region's dirty pages back, then unmaps it. `addr` is what
 * umap() returned; the whole region goes (as in umap, `length` is not used
 * to split it). 0, or -1 with errno (the region then stays mapped). */
UMAP_API int uunmap(void* addr, size_t length);

/* Writes the dirty pages of every region back (and waits for the disk).
 * 0, or -1 with errno. */
UMAP_API int umap_flush(void);

/* 1: regions may be written (this library is never read-only). */
UMAP_API int umap_has_write_support(void);

struct umap_prefetch_item {
    void* page_base_addr; /* an address in a umap region: its umap page is read in */
};

/* Reads the listed pages in before they are touched. errno = EINVAL (and
 * nothing read) if npages < 0, page_array is NULL with npages > 0, or an
 * address lies in no region. */
UMAP_API void umap_prefetch(int npages, struct umap_prefetch_item* page_array);

/* Reads [paddr, paddr + size) in. The pages are not pinned: under the memory
 * budget they may be evicted later like any other (docs/umap.md). errno =
 * EINVAL if the range is not inside one region. */
UMAP_API void umap_fetch_and_pin(char* paddr, uint64_t size);

/* The configuration in use (from the UMAP_* environment variables, or
 * umap's defaults). */
UMAP_API long umapcfg_get_system_page_size(void);
UMAP_API uint64_t umapcfg_get_umap_page_size(void);
UMAP_API uint64_t umapcfg_get_max_fault_events(void);
UMAP_API uint64_t umapcfg_get_num_fillers(void);
UMAP_API uint64_t umapcfg_get_num_evictors(void);
UMAP_API uint64_t umapcfg_get_max_pages_in_buffer(void);
UMAP_API uint64_t umapcfg_get_read_ahead(void);
UMAP_API int umapcfg_get_evict_low_water_threshold(void);
UMAP_API int umapcfg_get_evict_high_water_threshold(void);

#ifdef __cplusplus
}
#endif

#define UMAP_PRIVATE MAP_PRIVATE /* written pages go back to the file: see above */
#define UMAP_FIXED MAP_FIXED     /* place the region exactly at addr */
#define UMAP_FAILED ((void*)-1)

#endif
