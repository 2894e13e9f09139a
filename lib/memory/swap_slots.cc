#include "memory/swap_slots.h"

#include "memory/lazy_table.h"

#include <cerrno>
#include <memory>
#include <new>
#include <sys/mman.h>

namespace faultline::memory {

Result<std::unique_ptr<SwapSlots>> SwapSlots::create(size_t slots) noexcept
{
    if (slots == 0 || slots >= kNone)
        return fail(EINVAL, "swap must hold between 1 and 2^32-2 pages");
    const size_t words = (slots + 63) / 64;
    const size_t bytes = words * sizeof(uint64_t);
    auto* words_p = map_lazy_table<std::atomic<uint64_t>>(bytes);
    if (!words_p)
        return fail(ENOMEM, "cannot reserve the swap slot bitmap");
    // Bits past the last slot are marked taken, so that the search never
    // hands them out and needs no bounds check per bit.
    if (slots % 64)
        words_p[words - 1].store(~uint64_t(0) << (slots % 64), std::memory_order_relaxed);
    auto* s = new (std::nothrow) SwapSlots(words_p, slots, bytes);
    if (!s) {
        unmap_lazy_table(words_p, bytes);
        return fail(ENOMEM, "out of memory for the swap slots");
    }
    return std::unique_ptr<SwapSlots>(s);
}

SwapSlots::~SwapSlots() { unmap_lazy_table(words_, map_bytes_); }

uint32_t SwapSlots::allocate() noexcept
{
    const size_t words = (slots_ + 63) / 64;
    std::lock_guard g(lock_);
    for (size_t n = 0; n < words; ++n) {
        const size_t w = (cursor_ + n) % words;
        uint64_t v = words_[w].load(std::memory_order_relaxed);
        while (~v) {
            const unsigned bit = unsigned(__builtin_ctzll(~v));
            // Frees race with us (fetch_and on other bits): claim by CAS.
            if (words_[w].compare_exchange_weak(v, v | (uint64_t(1) << bit), std::memory_order_acquire)) {
                cursor_ = w;
                used_.fetch_add(1, std::memory_order_relaxed);
                return uint32_t(w * 64 + bit);
            }
        }
    }
    return kNone;
}

void SwapSlots::free(uint32_t slot) noexcept
{
    if (slot >= slots_)
        return;
    const uint64_t bit = uint64_t(1) << (slot % 64);
    if (words_[slot / 64].fetch_and(~bit, std::memory_order_release) & bit)
        used_.fetch_sub(1, std::memory_order_relaxed);
}

} // namespace faultline::memory
