// memory/fault_counters.h — faults resolved, by kind of fill, in one place.
//
// An object's answer to a fault carries the kind of fill that resolved it;
// the region counts it here. Each kind has a code path that produces it; the
// roadmap's kinds (copy-on-write, purged, swap) are added with theirs.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace faultline::memory {

enum class FillKind : uint8_t {
    Zero,         // zero-filled (anonymous memory)
    Backing,      // contents produced by the object's backing (a file, a store, a test producer)
    WriteProtect, // a write-protect fault resolved (the page was there; its protection lifted)
    Count,
};

class FaultCounters {
public:
    void count(FillKind kind, uint64_t pages) noexcept
    {
        faults_[size_t(kind)].fetch_add(1, std::memory_order_relaxed);
        pages_installed_.fetch_add(pages, std::memory_order_relaxed);
    }
    void add_pages(uint64_t pages) noexcept { pages_installed_.fetch_add(pages, std::memory_order_relaxed); }

    uint64_t faults(FillKind kind) const noexcept { return faults_[size_t(kind)].load(std::memory_order_relaxed); }
    uint64_t pages_installed() const noexcept { return pages_installed_.load(std::memory_order_relaxed); }

    // Adds `numerator / denominator` of `from`'s counts (a split region
    // hands its counts to its pieces by their share of its populated pages).
    void add_share(const FaultCounters& from, uint64_t numerator, uint64_t denominator) noexcept
    {
        auto share = [&](uint64_t v) -> uint64_t {
            if (denominator == 0)
                return 0;
            // v * numerator can pass 2^64; so can nothing in 128 bits.
            __extension__ typedef unsigned __int128 Wide;
            return uint64_t(Wide(v) * numerator / denominator);
        };
        for (size_t k = 0; k < size_t(FillKind::Count); ++k)
            faults_[k].fetch_add(share(from.faults(FillKind(k))), std::memory_order_relaxed);
        pages_installed_.fetch_add(share(from.pages_installed()), std::memory_order_relaxed);
    }
    // Adds what `from` has beyond `already` (the remainder of a split).
    void add_difference(const FaultCounters& from, const FaultCounters& already) noexcept
    {
        for (size_t k = 0; k < size_t(FillKind::Count); ++k)
            faults_[k].fetch_add(from.faults(FillKind(k)) - already.faults(FillKind(k)), std::memory_order_relaxed);
        pages_installed_.fetch_add(from.pages_installed() - already.pages_installed(), std::memory_order_relaxed);
    }

private:
    std::atomic<uint64_t> faults_[size_t(FillKind::Count)] {};
    std::atomic<uint64_t> pages_installed_ { 0 };
};

} // namespace faultline::memory
