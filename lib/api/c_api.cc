// The C API: handles instead of pointers, -errno instead of Result.
//
// A handle is a 64-bit number that is never reused within a process, looked
// up in a table under a reader/writer lock. A call with a destroyed
// runtime's handle finds nothing and returns -EBADF; a call racing with
// faultline_destroy() either completes before the destruction starts or
// sees -EBADF, because destroy takes the table lock exclusively.
#include "api/callback_store.h"

#include <faultline/faultline.h>
#include <faultline/redis_store.h>
#include <faultline/runtime.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>

using namespace faultline;

namespace {

std::shared_mutex g_lock;
std::map<uint64_t, std::shared_ptr<Runtime>> g_runtimes;
uint64_t g_next_handle = 1;
thread_local char g_last_error[512];

int remember(int code, const char* message)
{
    snprintf(g_last_error, sizeof g_last_error, "%s", message);
    return -code;
}

int to_rc(const Error& e) { return remember(e.code(), e.message()); }

// Bits a C caller may pass that the C++ enums cannot hold: checked before
// any conversion, so 0x101 is refused instead of truncated to 0x01.
constexpr unsigned kAccessBits = FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE | FAULTLINE_ACCESS_EXEC;

std::shared_ptr<Runtime> lookup(faultline_runtime_t handle)
{
    std::shared_lock lock(g_lock);
    auto it = g_runtimes.find(handle);
    return it == g_runtimes.end() ? nullptr : it->second;
}

template <typename Fn>
int with_runtime(faultline_runtime_t handle, Fn&& fn)
{
    // A shared_ptr copy keeps the runtime alive for the length of the call,
    // even if another thread destroys the handle meanwhile; destroy waits
    // for the last user (see faultline_destroy).
    auto rt = lookup(handle);
    if (!rt)
        return remember(EBADF, "stale or unknown runtime handle");
    try {
        return fn(*rt);
    } catch (const std::bad_alloc&) {
        return remember(ENOMEM, "out of memory");
    }
}

// A store region's options from the C arguments (access already checked).
StoreMapOptions store_map_options(int64_t offset, size_t length, unsigned access, const char* name)
{
    StoreMapOptions o;
    o.length = length;
    o.offset = offset;
    o.access = Access(access);
    if (name)
        o.name = name;
    return o;
}

} // namespace

extern "C" {

int faultline_create(const faultline_config* config, faultline_runtime_t* out)
{
    if (!out)
        return remember(EINVAL, "out is NULL");
    Config c;
    if (config) {
        if (config->arena_size)
            c.arena_size = config->arena_size;
        c.commit_limit = config->commit_limit;
        if (config->handler_threads)
            c.handler_threads = config->handler_threads;
        if (config->fault_around_pages)
            c.fault_around_pages = config->fault_around_pages;
        c.fault_around_max_pages = config->fault_around_max_pages;
        c.allow_write_execute = config->allow_write_execute != 0;
        c.purge.budget = config->purge_budget;
        c.purge.order = config->purge_lifo ? PurgeOrder::Lifo : PurgeOrder::Fifo;
        if (config->pressure_trigger)
            c.purge.pressure_trigger = config->pressure_trigger;
        c.purge.pressure_purge_bytes = config->pressure_purge_bytes;
    }
    try {
        auto rt = Runtime::create(c);
        if (!rt)
            return to_rc(rt.error());
        std::unique_lock lock(g_lock);
        uint64_t handle = g_next_handle++;
        g_runtimes.emplace(handle, std::shared_ptr<Runtime>(std::move(*rt)));
        *out = handle;
        return 0;
    } catch (const std::bad_alloc&) {
        return remember(ENOMEM, "out of memory");
    }
}

int faultline_destroy(faultline_runtime_t handle)
{
    std::shared_ptr<Runtime> rt;
    {
        std::unique_lock lock(g_lock);
        auto it = g_runtimes.find(handle);
        if (it == g_runtimes.end())
            return remember(EBADF, "stale or unknown runtime handle");
        rt = std::move(it->second);
        g_runtimes.erase(it);
    }
    // Other threads in a call hold their own reference; the runtime is
    // destroyed when the last of them returns.
    rt.reset();
    return 0;
}

int faultline_map(faultline_runtime_t handle, void* address, size_t size, unsigned access, unsigned flags, const char* name, void** out)
{
    if (!out)
        return remember(EINVAL, "out is NULL");
    if (access & ~kAccessBits)
        return remember(EINVAL, "unknown access bits");
    return with_runtime(handle, [&](Runtime& rt) {
        MapOptions o;
        o.size = size;
        o.address = address;
        o.access = Access(access);
        o.flags = RegionFlags(flags);
        if (name)
            o.name = name;
        auto r = rt.map_anonymous(o);
        if (!r)
            return to_rc(r.error());
        *out = *r;
        return 0;
    });
}

int faultline_map_file(faultline_runtime_t handle, int fd, int64_t offset, size_t length, unsigned access, unsigned flags,
    const char* name, void** out)
{
    if (!out)
        return remember(EINVAL, "out is NULL");
    if (access & ~kAccessBits)
        return remember(EINVAL, "unknown access bits");
    if (flags & ~unsigned(FAULTLINE_FILE_PRIVATE | FAULTLINE_FILE_DIRECT_IO))
        return remember(EINVAL, "unknown file flags");
    return with_runtime(handle, [&](Runtime& rt) {
        FileMapOptions o;
        o.length = length;
        o.offset = offset;
        o.access = Access(access);
        o.sharing = (flags & FAULTLINE_FILE_PRIVATE) ? Sharing::Private : Sharing::Shared;
        o.direct_io = (flags & FAULTLINE_FILE_DIRECT_IO) != 0;
        if (name)
            o.name = name;
        auto r = rt.map_file(fd, o);
        if (!r)
            return to_rc(r.error());
        *out = *r;
        return 0;
    });
}

int faultline_map_store(faultline_runtime_t handle, const faultline_store_ops* ops, void* ctx, int64_t offset,
    size_t length, unsigned access, const char* name, void** out)
{
    if (!out)
        return remember(EINVAL, "out is NULL");
    if (!ops)
        return remember(EINVAL, "ops is NULL");
    if (!ops->size || !ops->read)
        return remember(EINVAL, "a store needs its size and read callbacks");
    if (access & ~kAccessBits)
        return remember(EINVAL, "unknown access bits");
    return with_runtime(handle, [&](Runtime& rt) {
        auto store = std::make_shared<api::CallbackStore>(*ops, ctx);
        const StoreMapOptions o = store_map_options(offset, length, access, name);
        // Armed before mapping: once the region exists, another thread may
        // unmap it and drop the runtime's reference before map_store even
        // returns here; our own reference keeps the destructor from running
        // until we have decided.
        store->arm();
        Result<void*> r = fail(ENOMEM, "out of memory");
        try {
            r = rt.map_store(store, o);
        } catch (...) {
            store->disarm();
            throw;
        }
        if (!r) {
            store->disarm(); // the caller keeps ctx: no release for a failed map
            return to_rc(r.error());
        }
        *out = *r;
        return 0;
    });
}

} // extern "C"

// The C handle of a RedisStore: the caller's reference; each region mapped
// holds another (the runtime's), so destroy before unmap is safe.
struct faultline_redis_store {
    std::shared_ptr<RedisStore> store;
};

extern "C" {

int faultline_redis_store_create(const char* url, uint64_t size, const char* name, faultline_redis_store_t* out)
{
    if (!out)
        return remember(EINVAL, "out is NULL");
    if (!url)
        return remember(EINVAL, "url is NULL");
    try {
        RedisStoreOptions o;
        o.url = url;
        o.size = size;
        if (name)
            o.name = name;
        auto r = RedisStore::create(o);
        if (!r)
            return to_rc(r.error());
        *out = new faultline_redis_store { std::move(*r) };
        return 0;
    } catch (const std::bad_alloc&) {
        return remember(ENOMEM, "out of memory");
    }
}

int faultline_map_redis_store(faultline_runtime_t handle, faultline_redis_store_t store, int64_t offset, size_t length,
    unsigned access, const char* name, void** out)
{
    if (!out)
        return remember(EINVAL, "out is NULL");
    if (!store)
        return remember(EINVAL, "store is NULL");
    if (access & ~kAccessBits)
        return remember(EINVAL, "unknown access bits");
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.map_store(store->store, store_map_options(offset, length, access, name));
        if (!r)
            return to_rc(r.error());
        *out = *r;
        return 0;
    });
}

int faultline_redis_store_discard(faultline_redis_store_t store, uint64_t offset, uint64_t size)
{
    if (!store)
        return remember(EINVAL, "store is NULL");
    const int rc = store->store->discard(offset, size);
    return rc < 0 ? remember(-rc, "RedisStore discard failed (docs/far-memory.md)") : 0;
}

int faultline_redis_store_destroy(faultline_redis_store_t store)
{
    if (!store)
        return remember(EINVAL, "store is NULL");
    delete store;
    return 0;
}

int faultline_sync(faultline_runtime_t handle, void* address, size_t size, unsigned flags)
{
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.sync(address, size, SyncFlags(flags));
        return r ? 0 : to_rc(r.error());
    });
}

int faultline_unmap(faultline_runtime_t handle, void* address, size_t size)
{
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.unmap(address, size);
        return r ? 0 : to_rc(r.error());
    });
}

int faultline_protect(faultline_runtime_t handle, void* address, size_t size, unsigned access)
{
    if (access & ~kAccessBits)
        return remember(EINVAL, "unknown access bits");
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.protect(address, size, Access(access));
        return r ? 0 : to_rc(r.error());
    });
}

int faultline_set_name(faultline_runtime_t handle, void* address, size_t size, const char* name)
{
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.set_name(address, size, name ? name : "");
        return r ? 0 : to_rc(r.error());
    });
}

int faultline_discard(faultline_runtime_t handle, void* address, size_t size)
{
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.discard(address, size);
        return r ? 0 : to_rc(r.error());
    });
}

int faultline_clone(faultline_runtime_t handle, void* address, const char* name, void** out)
{
    if (!out)
        return -EINVAL;
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.clone(address, name ? name : "");
        if (!r)
            return to_rc(r.error());
        *out = *r;
        return 0;
    });
}

int faultline_snapshot(faultline_runtime_t handle, void* address, const char* name, void** out)
{
    if (!out)
        return -EINVAL;
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.snapshot(address, name ? name : "");
        if (!r)
            return to_rc(r.error());
        *out = *r;
        return 0;
    });
}

int faultline_rollback(faultline_runtime_t handle, void* address, void* snapshot)
{
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.rollback(address, snapshot);
        return r ? 0 : to_rc(r.error());
    });
}

int faultline_make_immutable(faultline_runtime_t handle, void* address, size_t size)
{
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.make_immutable(address, size);
        return r ? 0 : to_rc(r.error());
    });
}

int faultline_get_region_stats(faultline_runtime_t handle, const void* address, faultline_region_stats* out)
{
    if (!out)
        return remember(EINVAL, "out is NULL");
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.region_stats(address);
        if (!r)
            return to_rc(r.error());
        out->base = r->base;
        out->size = r->size;
        out->access = unsigned(r->access);
        out->flags = unsigned(r->flags);
        out->amount_resident = r->amount_resident;
        out->amount_dirty = r->amount_dirty;
        out->cow_pages = r->cow_pages;
        out->cow_shared_pages = r->cow_shared_pages;
        out->cow_private_pages = r->cow_private_pages;
        out->chain_depth = r->chain_depth;
        out->zero_faults = r->zero_faults;
        out->write_protect_faults = r->write_protect_faults;
        out->inode_faults = r->inode_faults;
        out->file_bytes_read = r->file_bytes_read;
        out->file_bytes_written = r->file_bytes_written;
        out->dirty_pages = r->dirty_pages;
        out->pages_installed = r->pages_installed;
        out->volatile_bytes = r->volatile_bytes;
        out->volatile_resident = r->volatile_resident;
        out->nonvolatile_resident = r->nonvolatile_resident;
        out->purged_pages = r->purged_pages;
        out->purges = r->purges;
        out->purged_bytes = r->purged_bytes;
        return 0;
    });
}

int faultline_allocate_purgeable(faultline_runtime_t handle, size_t size, const faultline_purgeable_options* options, void** out)
{
    if (!out)
        return remember(EINVAL, "out is NULL");
    if (options && (options->access & ~kAccessBits))
        return remember(EINVAL, "unknown access bits");
    if (options && options->purged_access > FAULTLINE_PURGED_CALLBACK)
        return remember(EINVAL, "unknown purged_access");
    return with_runtime(handle, [&](Runtime& rt) {
        PurgeableOptions o;
        if (options) {
            o.alignment = options->alignment;
            o.address = options->address;
            if (options->access)
                o.access = Access(options->access);
            o.flags = RegionFlags(options->flags);
            if (options->name)
                o.name = options->name;
            o.purged_access = PurgedAccess(options->purged_access);
            if (auto* fn = options->on_purged_access) {
                void* user = options->user;
                o.on_purged_access = [fn, user](void* page) { return fn(page, user) != 0; };
            }
        }
        auto r = rt.allocate_purgeable(size, o);
        if (!r)
            return to_rc(r.error());
        *out = *r;
        return 0;
    });
}

int faultline_set_volatile(faultline_runtime_t handle, void* address, size_t size, unsigned priority)
{
    if (priority > FAULTLINE_PURGE_HIGH)
        return remember(EINVAL, "unknown purge priority");
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.set_volatile(address, size, { .priority = PurgePriority(priority) });
        return r ? 0 : to_rc(r.error());
    });
}

int faultline_set_nonvolatile(faultline_runtime_t handle, void* address, size_t size, faultline_page_range* ranges, size_t capacity,
    size_t* count)
{
    if (capacity && !ranges)
        return remember(EINVAL, "ranges is NULL");
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.set_nonvolatile(address, size);
        if (!r)
            return to_rc(r.error());
        for (size_t i = 0; i < r->purged_ranges.size() && i < capacity; ++i)
            ranges[i] = { r->purged_ranges[i].address, r->purged_ranges[i].size };
        if (count)
            *count = r->purged_ranges.size();
        return r->purged ? 1 : 0;
    });
}

int faultline_purge(faultline_runtime_t handle, size_t bytes, size_t* purged_bytes)
{
    return with_runtime(handle, [&](Runtime& rt) {
        auto r = rt.purge(bytes);
        if (!r)
            return to_rc(r.error());
        if (purged_bytes)
            *purged_bytes = r->purged_bytes;
        return 0;
    });
}

int faultline_set_purge_callbacks(faultline_runtime_t handle, int (*before)(const faultline_purge_event*, void*),
    void (*after)(const faultline_purge_event*, void*), void* user)
{
    return with_runtime(handle, [&](Runtime& rt) {
        auto convert = [](const PurgeEvent& e) {
            return faultline_purge_event { e.address, e.size, unsigned(e.priority), unsigned(e.reason), e.purged_bytes };
        };
        PurgeCallbacks callbacks;
        if (before)
            callbacks.before_purge = [=](const PurgeEvent& e) {
                auto c = convert(e);
                return before(&c, user) != 0;
            };
        if (after)
            callbacks.after_purge = [=](const PurgeEvent& e) {
                auto c = convert(e);
                after(&c, user);
            };
        auto r = rt.set_purge_callbacks(std::move(callbacks));
        return r ? 0 : to_rc(r.error());
    });
}

int faultline_get_purge_stats(faultline_runtime_t handle, faultline_purge_stats* out)
{
    if (!out)
        return remember(EINVAL, "out is NULL");
    return with_runtime(handle, [&](Runtime& rt) {
        PurgeStats s = rt.purge_stats();
        *out = { s.volatile_bytes, s.volatile_resident, s.nonvolatile_resident, s.reclaimable, s.purges, s.purged_bytes,
            s.purged_refaults, s.vetoes, s.pressure_events, s.budget_purges, s.commit_purges, s.pressure_trigger_open ? 1 : 0 };
        return 0;
    });
}

long faultline_to_json(faultline_runtime_t handle, char* buf, size_t len)
{
    long result = 0;
    int rc = with_runtime(handle, [&](Runtime& rt) {
        std::string json = rt.to_json();
        if (buf && len > 0) {
            size_t n = json.size() < len - 1 ? json.size() : len - 1;
            memcpy(buf, json.data(), n);
            buf[n] = '\0';
        }
        result = long(json.size());
        return 0;
    });
    return rc < 0 ? rc : result;
}

const char* faultline_last_error(void) { return g_last_error; }

} // extern "C"
