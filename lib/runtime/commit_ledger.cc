#include "runtime/commit_ledger.h"

#include <cstdint>
#include <sys/sysinfo.h>

namespace faultline {

namespace {
size_t default_limit() noexcept
{
    struct sysinfo info {};
    if (sysinfo(&info) != 0)
        return SIZE_MAX;
    return (size_t(info.totalram) + size_t(info.totalswap)) * info.mem_unit;
}
}

CommitLedger::CommitLedger(size_t limit) noexcept
    : limit_(limit ? limit : default_limit())
{
}

Result<void> CommitLedger::charge(size_t bytes) noexcept
{
    size_t now = committed_.load(std::memory_order_relaxed);
    do {
        const size_t reclaimable = reclaimable_.load(std::memory_order_relaxed);
        if (bytes > limit_ || now > limit_ - bytes || reclaimable > limit_ - bytes - now)
            return failf(ENOMEM, "commit limit reached (%zu of %zu bytes committed, %zu volatile, %zu more asked)", now, limit_,
                reclaimable, bytes);
    } while (!committed_.compare_exchange_weak(now, now + bytes, std::memory_order_relaxed));
    return {};
}

size_t CommitLedger::shortfall(size_t bytes) const noexcept
{
    const size_t now = committed_.load(std::memory_order_relaxed);
    if (bytes > limit_ || now > limit_ - bytes)
        return SIZE_MAX;
    const size_t room = limit_ - bytes - now;
    const size_t reclaimable = reclaimable_.load(std::memory_order_relaxed);
    return reclaimable > room ? reclaimable - room : 0;
}

} // namespace faultline
