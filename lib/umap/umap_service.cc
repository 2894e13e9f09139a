#include "umap/umap_service.h"

#include "support/try.h"
#include "umap/umap_store_adapter.h"

#include <cerrno>
#include <sys/mman.h>

namespace faultline::umap {

namespace {

// umap maps whatever a program asks for; faultline maps inside one arena.
// A terabyte of address space (it costs nothing until touched) keeps the
// arena from being the limit for files larger than the default 64 GiB.
constexpr size_t kArenaSize = size_t(1) << 40;
constexpr const char* kRegionName = "umap";

} // namespace

UmapService& UmapService::instance()
{
    // Constructed at the first umap call (reading UMAP_* then, as umap
    // does); destroyed at exit, which writes back what is still mapped.
    static UmapService service;
    return service;
}

UmapService::UmapService()
    : config_(UmapConfig::from_environment())
{
}

UmapService::~UmapService() = default;

Runtime* UmapService::runtime_if_created()
{
    std::lock_guard g(lock_);
    return runtime_.get();
}

Result<Runtime*> UmapService::runtime()
{
    if (runtime_)
        return runtime_.get();
    Config c = config_.runtime_config();
    c.arena_size = kArenaSize;
    auto created = Runtime::create(c);
    if (!created && created.error().code() == ENOMEM) {
        // A process whose address space is limited (ulimit -v, a sanitizer's
        // layout): the default arena then.
        c.arena_size = Config {}.arena_size;
        created = Runtime::create(c);
    }
    // A failure is not remembered: the next umap() tries again (the fix may
    // be a sysctl the user sets meanwhile).
    if (!created)
        return std::unexpected(created.error());
    runtime_ = std::move(*created);
    return runtime_.get();
}

Result<void*> UmapService::map(void* address, size_t length, int prot, int flags, int fd, off_t offset,
    Umap::Store* store)
{
    std::lock_guard g(lock_);
    if (config_.problem())
        return std::unexpected(*config_.problem());
    const uint64_t psize = config_.page_size;
    if (length == 0)
        return fail(EINVAL, "length is zero");
    if (length % psize)
        return failf(EINVAL, "length must be a multiple of the umap page size (%llu)", (unsigned long long)psize);
    // umap's only mode is UMAP_PRIVATE, optionally with UMAP_FIXED: anything
    // else (MAP_SHARED, MAP_ANONYMOUS, ...) is refused, as umap does — but
    // with EINVAL instead of abort().
    if (!(flags & UMAP_PRIVATE) || (flags & ~(UMAP_PRIVATE | UMAP_FIXED)))
        return failf(EINVAL, "flags %#x: umap supports UMAP_PRIVATE, optionally with UMAP_FIXED", unsigned(flags));
    if (prot & ~(PROT_READ | PROT_WRITE))
        return fail(EINVAL, "prot may hold only PROT_READ and PROT_WRITE");
    if (uintptr_t(address) % psize)
        return fail(EINVAL, "addr must be aligned to the umap page size");
    if ((flags & UMAP_FIXED) && !address)
        return fail(EINVAL, "UMAP_FIXED needs an address");
    if (offset < 0 || uint64_t(offset) % psize)
        return fail(EINVAL, "offset must be a non-negative multiple of the umap page size");
    if (!store && fd < 0)
        return fail(EBADF, "fd is not an open descriptor");
    // Write implies read, as for mmap(2) on x86.
    const Access access = (prot & PROT_WRITE) ? Access::ReadWrite : (prot & PROT_READ) ? Access::Read : Access::None;

    Runtime* rt = TRY(runtime());
    // Without UMAP_FIXED umap takes addr as a hint only (mmap's), and so does
    // this: the region goes wherever the arena has room — aligned to the umap
    // page, which umap guarantees and programs may rely on. The runtime has
    // no aligned file mapping, so an aligned anonymous reservation finds the
    // place (this lock keeps every other umap call out meanwhile).
    void* where = (flags & UMAP_FIXED) ? address : nullptr;
    if (!where && psize > config_.system_page_size) {
        void* probe = TRY(rt->map_anonymous({ .size = length, .alignment = psize, .access = Access::Read,
            .flags = RegionFlags::NoReserve, .name = kRegionName }));
        TRY(rt->unmap(probe, length));
        where = probe;
    }

    void* mapped = nullptr;
    std::shared_ptr<UmapStoreAdapter> adapter;
    if (store) {
        adapter = std::make_shared<UmapStoreAdapter>(store, uint64_t(offset) + length, psize);
        mapped = TRY(rt->map_store(adapter, { .length = length, .offset = int64_t(offset), .address = where,
            .access = access, .name = kRegionName, .readahead_min_pages = config_.readahead_min_pages(),
            .readahead_max_pages = config_.readahead_max_pages(), .threads = config_.store_threads() }));
    } else {
        // umap's mode is a shared file mapping in mmap(2)'s terms (docs/umap.md).
        mapped = TRY(rt->map_file(fd, { .length = length, .offset = int64_t(offset), .address = where, .access = access,
            .sharing = Sharing::Shared, .name = kRegionName, .readahead_min_pages = config_.readahead_min_pages(),
            .readahead_max_pages = config_.readahead_max_pages() }));
    }
    regions_[uintptr_t(mapped)] = { length, access != Access::None, access == Access::ReadWrite, std::move(adapter) };
    return mapped;
}

Result<void> UmapService::unmap(void* address)
{
    std::lock_guard g(lock_);
    auto it = regions_.find(uintptr_t(address));
    if (it == regions_.end() || !runtime_)
        return fail(EINVAL, "addr is not the start of a umap region");
    // Write back first and keep the region if that fails: the caller gets
    // the errno and may retry (unmap alone would only log the error).
    if (it->second.writable)
        TRY(runtime_->sync(address, it->second.size, SyncFlags::Sync));
    TRY(runtime_->unmap(address, it->second.size));
    // The application may delete its store once this returns: no call may
    // reach it later (UmapStoreAdapter::detach).
    if (it->second.store)
        it->second.store->detach();
    regions_.erase(it);
    return {};
}

Result<void> UmapService::flush()
{
    std::lock_guard g(lock_);
    // Every region is tried; the first error is returned.
    Result<void> first {};
    for (const auto& [base, m] : regions_) {
        if (!m.writable)
            continue;
        auto r = runtime_->sync(reinterpret_cast<void*>(base), m.size, SyncFlags::Sync);
        if (!r && first)
            first = std::unexpected(r.error());
    }
    return first;
}

std::map<uintptr_t, UmapService::Mapping>::const_iterator UmapService::find(uintptr_t address, size_t size) const
{
    auto it = regions_.upper_bound(address);
    if (it == regions_.begin())
        return regions_.end();
    --it;
    const uintptr_t base = it->first, end = base + it->second.size;
    if (address < base || address >= end || size > end - address)
        return regions_.end();
    return it;
}

void UmapService::touch(uintptr_t address, size_t size) const
{
    const uintptr_t sys = config_.system_page_size;
    for (uintptr_t p = address & ~(sys - 1); p < address + size; p += sys)
        (void)*reinterpret_cast<const volatile char*>(p);
}

Result<void> UmapService::prefetch(int npages, const umap_prefetch_item* items)
{
    std::lock_guard g(lock_);
    if (npages < 0)
        return fail(EINVAL, "npages is negative");
    if (npages > 0 && !items)
        return fail(EINVAL, "page_array is NULL");
    // Every item is checked before anything is read: all or nothing.
    for (int i = 0; i < npages; ++i) {
        auto it = find(uintptr_t(items[i].page_base_addr), 1);
        if (it == regions_.end())
            return failf(EINVAL, "page_array[%d] lies in no umap region", i);
        if (!it->second.readable)
            return failf(EINVAL, "page_array[%d] lies in a region mapped without PROT_READ", i);
    }
    const uint64_t psize = config_.page_size;
    for (int i = 0; i < npages; ++i) {
        const uintptr_t a = uintptr_t(items[i].page_base_addr);
        const uintptr_t base = find(a, 1)->first; // regions start on a umap page
        touch(base + (a - base) / psize * psize, psize);
    }
    return {};
}

Result<void> UmapService::fetch(const char* address, uint64_t size)
{
    std::lock_guard g(lock_);
    if (size == 0)
        return {};
    auto it = find(uintptr_t(address), size);
    if (it == regions_.end())
        return fail(EINVAL, "the range is not inside one umap region");
    if (!it->second.readable)
        return fail(EINVAL, "the region was mapped without PROT_READ");
    touch(uintptr_t(address), size);
    return {};
}

} // namespace faultline::umap
