// api/callback_store.h — a Store whose pages come from C callbacks
// (faultline_map_store, <faultline/faultline.h>).
//
// The C caller hands over a table of function pointers and a context; this
// adapter copies the table (the caller's may be a temporary) and forwards each
// Store call. release() is the C caller's destructor: it runs exactly once,
// from this object's destructor, i.e. when the runtime drops its last
// reference to the store — which it never does on a fault-handler thread
// (the cache that holds the store is freed by API calls and destruction).
//
// A failed faultline_map_store must not release: the caller still owns the
// context and would free it twice. So the adapter starts disarmed and the
// C entry point arms it only once the region exists (disarm() on failure
// while it still holds a reference, so no other owner can run the
// destructor first).
#pragma once

#include <faultline/faultline.h>
#include <faultline/store.h>

#include <atomic>

namespace faultline::api {

class CallbackStore final : public Store {
public:
    CallbackStore(const faultline_store_ops& ops, void* ctx) noexcept
        : ops_(ops)
        , ctx_(ctx)
    {
    }
    ~CallbackStore() override;
    CallbackStore(const CallbackStore&) = delete;
    CallbackStore& operator=(const CallbackStore&) = delete;

    uint64_t size() noexcept override;
    int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept override;
    bool writable() const noexcept override { return ops_.write != nullptr; }
    int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept override;
    int flush() noexcept override;

    // From now on the destructor calls ops.release (see above).
    void arm() noexcept { armed_.store(true, std::memory_order_release); }
    void disarm() noexcept { armed_.store(false, std::memory_order_release); }

private:
    const faultline_store_ops ops_;
    void* const ctx_;
    std::atomic<bool> armed_ { false };
};

} // namespace faultline::api
