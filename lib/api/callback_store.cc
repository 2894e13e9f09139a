#include "api/callback_store.h"

#include <cerrno>

namespace faultline::api {

CallbackStore::~CallbackStore()
{
    if (armed_.load(std::memory_order_acquire) && ops_.release)
        ops_.release(ctx_);
}

uint64_t CallbackStore::size() noexcept { return ops_.size(ctx_); }

int64_t CallbackStore::read(void* buffer, size_t bytes, uint64_t offset) noexcept
{
    const int64_t rc = ops_.read(ctx_, buffer, bytes, offset);
    // A C callback may answer more than it was asked for by mistake; taking
    // that at its word would make the runtime believe bytes it never got.
    if (rc > int64_t(bytes))
        return -EIO;
    return rc;
}

int64_t CallbackStore::write(const void* buffer, size_t bytes, uint64_t offset) noexcept
{
    if (!ops_.write)
        return -EROFS;
    const int64_t rc = ops_.write(ctx_, buffer, bytes, offset);
    return rc > int64_t(bytes) ? -EIO : rc;
}

int CallbackStore::flush() noexcept { return ops_.flush ? ops_.flush(ctx_) : 0; }

} // namespace faultline::api
