// The public Runtime forwards to RuntimeCore, which keeps the library's
// internals out of the installed headers.
#include <faultline/runtime.h>

#include "runtime/runtime_core.h"
#include "support/try.h"

namespace faultline {

Result<std::unique_ptr<Runtime>> Runtime::create(Config config)
{
    auto core = TRY(RuntimeCore::try_create(std::move(config)));
    return std::unique_ptr<Runtime>(new Runtime(std::move(core)));
}

Runtime::Runtime(std::unique_ptr<RuntimeCore> core)
    : core_(std::move(core))
{
}

Runtime::~Runtime() = default;

Result<void*> Runtime::map_anonymous(const MapOptions& options) { return core_->map_anonymous(options); }
Result<void*> Runtime::map_file(int fd, const FileMapOptions& options) { return core_->map_file(fd, options); }
Result<void*> Runtime::map_file(const char* path, const FileMapOptions& options) { return core_->map_file(path, options); }
Result<void*> Runtime::map_store(std::shared_ptr<Store> store, const StoreMapOptions& options)
{
    return core_->map_store(std::move(store), options);
}
Result<void> Runtime::sync(void* address, size_t size, SyncFlags flags) { return core_->sync(uintptr_t(address), size, flags); }
Result<void> Runtime::unmap(void* address, size_t size) { return core_->unmap(uintptr_t(address), size); }
Result<void> Runtime::protect(void* address, size_t size, Access access) { return core_->protect(uintptr_t(address), size, access); }
Result<void> Runtime::set_name(void* address, size_t size, std::string_view name) { return core_->set_name(uintptr_t(address), size, name); }
Result<void> Runtime::make_immutable(void* address, size_t size) { return core_->make_immutable(uintptr_t(address), size); }
Result<void> Runtime::discard(void* address, size_t size) { return core_->discard(uintptr_t(address), size); }
Result<void*> Runtime::clone(void* address, std::string_view name) { return core_->clone(uintptr_t(address), name); }
Result<void*> Runtime::snapshot(void* address, std::string_view name) { return core_->snapshot(uintptr_t(address), name); }
Result<void> Runtime::rollback(void* address, void* snapshot) { return core_->rollback(uintptr_t(address), uintptr_t(snapshot)); }
Result<void*> Runtime::allocate_purgeable(size_t size, const PurgeableOptions& options) { return core_->allocate_purgeable(size, options); }
Result<void> Runtime::set_volatile(void* address, size_t size, VolatileOptions options) { return core_->set_volatile(uintptr_t(address), size, options); }
Result<NonVolatileResult> Runtime::set_nonvolatile(void* address, size_t size) { return core_->set_nonvolatile(uintptr_t(address), size); }
Result<PurgeResult> Runtime::purge(size_t bytes) { return core_->purge(bytes); }
Result<void> Runtime::set_purge_callbacks(PurgeCallbacks callbacks) { return core_->set_purge_callbacks(std::move(callbacks)); }
PurgeStats Runtime::purge_stats() const { return core_->purge_stats(); }
Result<RegionStats> Runtime::region_stats(const void* address) const { return core_->region_stats(uintptr_t(address)); }
std::vector<RegionStats> Runtime::regions() const { return core_->regions(); }
RuntimeStats Runtime::stats() const { return core_->stats(); }
std::string Runtime::to_json() const { return core_->to_json(); }
void* Runtime::arena_base() const { return reinterpret_cast<void*>(core_->arena_base()); }
size_t Runtime::arena_size() const { return core_->arena_size(); }
std::vector<std::string> Runtime::features() const { return core_->features().names(); }
bool Runtime::has_feature(std::string_view name) const
{
    for (auto& n : core_->features().names())
        if (n == name)
            return true;
    return false;
}
bool Runtime::user_mode_only() const { return core_->user_mode_only(); }
std::string Runtime::stat_address() const { return core_->stat_address(); }
const Config& Runtime::config() const { return core_->config(); }

} // namespace faultline
