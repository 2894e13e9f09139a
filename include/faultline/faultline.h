/* faultline/faultline.h — the C API.
 *
 * Every function returns 0 (or a non-negative value) on success and -errno on
 * failure; docs/api.md lists the errno values of each. A runtime is named by
 * a handle that is never reused: calls on a destroyed runtime's handle return
 * -EBADF instead of touching freed memory.
 */
#ifndef FAULTLINE_FAULTLINE_H
#define FAULTLINE_FAULTLINE_H

#include <faultline/export.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t faultline_runtime_t;

enum {
    FAULTLINE_ACCESS_READ = 1,
    FAULTLINE_ACCESS_WRITE = 2,
    FAULTLINE_ACCESS_EXEC = 4,
};

enum {
    FAULTLINE_REGION_SHARED = 1u << 0,
    FAULTLINE_REGION_STACK = 1u << 1,
    FAULTLINE_REGION_IMMUTABLE = 1u << 2,
    FAULTLINE_REGION_PURGEABLE = 1u << 3,
    FAULTLINE_REGION_NORESERVE = 1u << 4,
    FAULTLINE_REGION_CLONABLE = 1u << 5,
};

/* faultline_map_file flags. */
enum {
    FAULTLINE_FILE_SHARED = 0,       /* writes reach the file (the default) */
    FAULTLINE_FILE_PRIVATE = 1u << 0,/* a private copy-on-write view */
    FAULTLINE_FILE_DIRECT_IO = 1u << 1, /* read with O_DIRECT */
};

/* faultline_sync flags (msync(2)'s). */
enum {
    FAULTLINE_SYNC = 1,
    FAULTLINE_ASYNC = 2,
    FAULTLINE_INVALIDATE = 4,
};

typedef struct faultline_config {
    size_t arena_size;          /* 0 = default (64 GiB) */
    size_t commit_limit;        /* 0 = MemTotal + SwapTotal */
    unsigned handler_threads;   /* 0 = default */
    unsigned fault_around_pages;/* 0 = default */
    int allow_write_execute;
    unsigned fault_around_max_pages; /* 0 = automatic (see Config::fault_around_max_pages) */
    /* Purgeable memory (PurgeConfig): */
    size_t purge_budget;         /* volatile resident bytes allowed; 0 = no budget */
    int purge_lifo;              /* purge the most recently made volatile first */
    const char* pressure_trigger;/* PSI trigger; NULL = default, "" = none */
    size_t pressure_purge_bytes; /* per pressure event; 0 = all volatile memory */
} faultline_config;

typedef struct faultline_region_stats {
    uintptr_t base;
    size_t size;
    unsigned access;
    unsigned flags;
    size_t amount_resident;
    size_t amount_dirty;
    size_t cow_pages;
    uint64_t zero_faults;
    uint64_t pages_installed;
    uint64_t write_protect_faults;
    uint64_t inode_faults;       /* file regions: faults resolved from the file */
    uint64_t file_bytes_read;    /* file regions: the file's, shared by all its regions */
    uint64_t file_bytes_written;
    size_t dirty_pages;          /* file regions: this region's pages written and not yet synced */
    /* purgeable regions (RegionStats): */
    size_t volatile_bytes;
    size_t volatile_resident;
    size_t nonvolatile_resident;
    size_t purged_pages;
    uint64_t purges;
    uint64_t purged_bytes;
    /* copy-on-write views (docs/cow.md): */
    size_t cow_shared_pages;
    size_t cow_private_pages;
    unsigned chain_depth;
} faultline_region_stats;

/* A page store implemented in C (faultline_map_store; the C++ interface is
 * faultline/store.h, whose comments hold for these callbacks too). Every
 * callback gets the `ctx` given to faultline_map_store.
 *
 * Threads: read runs on the store's own threads (two; never a fault-handler
 * thread), up to two reads at once; write and flush run on the thread that
 * syncs or unmaps (or evicts under a memory budget), possibly beside reads of
 * other pages. size may run on any of those. The callbacks must be safe to
 * call that way. */
typedef struct faultline_store_ops {
    /* The store's size in bytes (pages wholly past it raise SIGBUS). */
    uint64_t (*size)(void* ctx);
    /* Reads `bytes` (whole pages) at `offset` (page-aligned) into `buffer`:
     * the bytes read (fewer only where the store ends) or -errno. A failed
     * read raises SIGBUS in the faulting threads only. */
    int64_t (*read)(void* ctx, void* buffer, size_t bytes, uint64_t offset);
    /* Writes `bytes` at `offset` (never past size): the bytes written or
     * -errno (the pages stay dirty; faultline_sync returns the error).
     * NULL = a read-only store: write access to its regions is -EACCES. */
    int64_t (*write)(void* ctx, const void* buffer, size_t bytes, uint64_t offset);
    /* Makes what write stored durable (faultline_sync with FAULTLINE_SYNC):
     * 0 or -errno. May be NULL. */
    int (*flush)(void* ctx);
    /* Called exactly once, when the runtime no longer uses the store: after
     * its region is unmapped (or the runtime destroyed) and its last write
     * has returned; never when faultline_map_store fails. May be NULL. */
    void (*release)(void* ctx);
} faultline_store_ops;
/* Purgeable memory (docs/purgeable.md). */
enum {
    FAULTLINE_PURGED_ZERO = 0,     /* a purged page touched while volatile reads zeros */
    FAULTLINE_PURGED_SIGBUS = 1,   /* ... raises SIGBUS */
    FAULTLINE_PURGED_CALLBACK = 2, /* ... asks on_purged_access (non-zero: zeros, 0: SIGBUS) */
};
enum {
    FAULTLINE_PURGE_OBSOLETE = 0, /* purge priority classes, purged in this order */
    FAULTLINE_PURGE_LOW = 1,
    FAULTLINE_PURGE_NORMAL = 2,
    FAULTLINE_PURGE_HIGH = 3,
};
#define FAULTLINE_PURGE_ALL SIZE_MAX

typedef struct faultline_purgeable_options {
    size_t alignment;
    void* address;
    unsigned access;             /* 0 = read-write */
    unsigned flags;              /* FAULTLINE_REGION_*; PURGEABLE is implied */
    const char* name;
    unsigned purged_access;      /* FAULTLINE_PURGED_* */
    int (*on_purged_access)(void* page, void* user); /* on the purge worker thread */
    void* user;
} faultline_purgeable_options;

typedef struct faultline_page_range {
    void* address;
    size_t size;
} faultline_page_range;

typedef struct faultline_purge_event {
    void* address;
    size_t size;
    unsigned priority;
    unsigned reason;             /* 0 explicit, 1 budget, 2 pressure, 3 commit limit */
    size_t purged_bytes;         /* after-purge only */
} faultline_purge_event;

typedef struct faultline_purge_stats {
    size_t volatile_bytes;
    size_t volatile_resident;
    size_t nonvolatile_resident;
    size_t reclaimable;
    uint64_t purges;
    uint64_t purged_bytes;
    uint64_t purged_refaults;
    uint64_t vetoes;
    uint64_t pressure_events;
    uint64_t budget_purges;
    uint64_t commit_purges;
    int pressure_trigger_open;
} faultline_purge_stats;

/* config may be NULL for defaults. On success *out holds the handle. */
FAULTLINE_API int faultline_create(const faultline_config* config, faultline_runtime_t* out);
/* Unmaps every region and stops the handler threads. -EBADF if stale. */
FAULTLINE_API int faultline_destroy(faultline_runtime_t rt);

/* Maps `size` bytes (page multiple) anywhere in the arena, or exactly at
 * `address` when it is not NULL. */
FAULTLINE_API int faultline_map(faultline_runtime_t rt, void* address, size_t size, unsigned access,
                  unsigned flags, const char* name, void** out);
/* Maps `length` bytes of the file `fd` from `offset` (docs/api.md, map_file);
 * `flags` is FAULTLINE_FILE_*. The runtime keeps its own descriptor. */
FAULTLINE_API int faultline_map_file(faultline_runtime_t rt, int fd, int64_t offset, size_t length, unsigned access,
                  unsigned flags, const char* name, void** out);
/* Maps `length` bytes of a C store from `offset` (a page multiple): a region
 * that behaves like a shared file region of the store (docs/api.md,
 * faultline_map_store). `ops` is copied; `ctx` belongs to the caller until
 * ops->release is called. Each successful call makes its own store object
 * (one cache): map a store once and share the region. */
FAULTLINE_API int faultline_map_store(faultline_runtime_t rt, const faultline_store_ops* ops, void* ctx, int64_t offset,
                  size_t length, unsigned access, const char* name, void** out);
/* A page store in Redis (docs/far-memory.md, "RedisStore"; the C++ class is
 * faultline/redis_store.h): `url` as Config::swap_path's
 * ("redis://[user[:password]@]host[:port][?...]", one node or any node of a
 * cluster; the password may come from $FAULTLINE_REDIS_PASSWORD), `size` a
 * positive page multiple, `name` NULL or 1-64 of [A-Za-z0-9_.-] (in the
 * keys). Connects now: -EINVAL, -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH,
 * -EACCES (password refused or missing), -EPROTO, -ENOMEM. */
typedef struct faultline_redis_store* faultline_redis_store_t;
FAULTLINE_API int faultline_redis_store_create(const char* url, uint64_t size, const char* name,
                  faultline_redis_store_t* out);
/* Maps `length` bytes of the Redis store from `offset` (a page multiple),
 * as faultline_map_store; every region of one store shares one cache.
 * -EINVAL for a NULL store or out, else faultline_map_store's errors. */
FAULTLINE_API int faultline_map_redis_store(faultline_runtime_t rt, faultline_redis_store_t store, int64_t offset,
                  size_t length, unsigned access, const char* name, void** out);
/* UNLINKs the store's pages of [offset, offset + size) (page-aligned; after
 * unmapping them): they read zeros afterwards. -EINVAL, -EIO, -ENOTCONN. */
FAULTLINE_API int faultline_redis_store_discard(faultline_redis_store_t store, uint64_t offset, uint64_t size);
/* Drops the caller's reference (exactly once per store): the keys are
 * deleted once no region of the store is mapped either. -EINVAL for NULL. */
FAULTLINE_API int faultline_redis_store_destroy(faultline_redis_store_t store);
/* Writes the dirty pages of the shared file regions over the range back
 * (docs/api.md, sync); `flags` is FAULTLINE_SYNC, _ASYNC and/or _INVALIDATE. */
FAULTLINE_API int faultline_sync(faultline_runtime_t rt, void* address, size_t size, unsigned flags);
FAULTLINE_API int faultline_unmap(faultline_runtime_t rt, void* address, size_t size);
FAULTLINE_API int faultline_protect(faultline_runtime_t rt, void* address, size_t size, unsigned access);
FAULTLINE_API int faultline_set_name(faultline_runtime_t rt, void* address, size_t size, const char* name);
FAULTLINE_API int faultline_make_immutable(faultline_runtime_t rt, void* address, size_t size);
/* Drops the pages of the range (docs/api.md, discard): an anonymous region
 * reads zeros at the next touch, a private file region the file again; a
 * shared file region keeps its pages. -ENOENT if the range is not fully
 * covered by regions, -EPERM on an immutable one, -EINVAL if unaligned. */
FAULTLINE_API int faultline_discard(faultline_runtime_t rt, void* address, size_t size);
/* The clone of the region that starts at `address` (mapped with
 * FAULTLINE_REGION_CLONABLE, or a private file or purgeable region) into *out; name NULL or "" = the source's
 * (docs/cow.md). -ENOENT: no region there; -EINVAL: not the start of a
 * region, not clonable, or a NULL out; -EPERM: immutable; -ENOMEM: the
 * clone's commit does not fit. */
FAULTLINE_API int faultline_clone(faultline_runtime_t rt, void* address, const char* name, void** out);
/* A read-only clone remembered as a snapshot of the region at `address`;
 * errors as faultline_clone. */
FAULTLINE_API int faultline_snapshot(faultline_runtime_t rt, void* address, const char* name, void** out);
/* Restores the region at `address` to `snapshot`. -ENOENT: no region at
 * either address; -EINVAL: not the start of a region, or not a snapshot of
 * this region; -EPERM: immutable. */
FAULTLINE_API int faultline_rollback(faultline_runtime_t rt, void* address, void* snapshot);
FAULTLINE_API int faultline_get_region_stats(faultline_runtime_t rt, const void* address, faultline_region_stats* out);
/* Maps a purgeable region of `size` bytes; options may be NULL for defaults. */
FAULTLINE_API int faultline_allocate_purgeable(faultline_runtime_t rt, size_t size, const faultline_purgeable_options* options,
                  void** out);
/* Makes the range volatile with a FAULTLINE_PURGE_* priority. */
FAULTLINE_API int faultline_set_volatile(faultline_runtime_t rt, void* address, size_t size, unsigned priority);
/* Makes the range non-volatile. Returns 1 when something was purged, 0 when
 * not, or -errno (-ENOMEM: still volatile, nothing lost). The purged ranges
 * are written to `ranges` (up to `capacity`; may be NULL); `*count` (may be
 * NULL) receives how many there are in all. */
FAULTLINE_API int faultline_set_nonvolatile(faultline_runtime_t rt, void* address, size_t size, faultline_page_range* ranges,
                  size_t capacity, size_t* count);
/* Purges at least `bytes` of resident volatile memory (FAULTLINE_PURGE_ALL:
 * all of it); `*purged_bytes` (may be NULL) receives what was dropped. */
FAULTLINE_API int faultline_purge(faultline_runtime_t rt, size_t bytes, size_t* purged_bytes);
/* Purge callbacks, on the purge worker thread; either may be NULL. before
 * returning 0 vetoes the span. */
FAULTLINE_API int faultline_set_purge_callbacks(faultline_runtime_t rt, int (*before)(const faultline_purge_event*, void*),
                  void (*after)(const faultline_purge_event*, void*), void* user);
FAULTLINE_API int faultline_get_purge_stats(faultline_runtime_t rt, faultline_purge_stats* out);
/* Writes the JSON region table into buf (NUL-terminated, truncated to len).
 * Returns the full length needed (excluding the NUL) or -errno. */
FAULTLINE_API long faultline_to_json(faultline_runtime_t rt, char* buf, size_t len);
/* Returns a static string describing the last error on this thread. */
FAULTLINE_API const char* faultline_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
