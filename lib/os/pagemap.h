// os/pagemap.h — reads /proc/self/pagemap to see what the kernel has mapped.
//
// Statistics (resident, dirty, shared-with-fork) come from the page tables,
// read on demand, instead of being tracked on the fault path: the kernel
// resolves some faults itself (copy-on-write of the zero page) and only the
// page tables know about those.
#pragma once

#include <faultline/result.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace faultline::os {

class Pagemap {
public:
    static Result<Pagemap> open();
    Pagemap(Pagemap&&) noexcept;
    Pagemap& operator=(Pagemap&&) = delete;
    ~Pagemap();

    // One 64-bit entry per page of [addr, addr + pages * page size).
    Result<std::vector<uint64_t>> read(uintptr_t addr, size_t pages) const;

    static bool present(uint64_t e) { return e & (uint64_t(1) << 63); }
    static bool swapped(uint64_t e) { return e & (uint64_t(1) << 62); }
    static bool exclusive(uint64_t e) { return e & (uint64_t(1) << 56); }
    static bool file_or_shared(uint64_t e) { return e & (uint64_t(1) << 61); }
    static uint64_t pfn(uint64_t e) { return e & ((uint64_t(1) << 55) - 1); }

    enum class Kind : char { None = '.', Zero = 'z', Private = 'D', Shared = 'c' };
    // Classifies a present entry. A page of a memfd (shared region) is
    // always a real page: Private here means "resident, not the zero
    // page". For private anonymous memory: the shared
    // zero page is never "exclusively mapped"; neither is a page shared with
    // a fork child. They are told apart by PFN where this process may see
    // PFNs (CAP_SYS_ADMIN), else by `installed_zero` (the runtime mapped the
    // zero page there).
    Kind classify(uint64_t entry, bool installed_zero) const;
    // 0 when PFNs are hidden from this process.
    uint64_t zero_pfn() const { return zero_pfn_; }

private:
    explicit Pagemap(int fd) : fd_(fd) {}
    int fd_ = -1;
    uint64_t zero_pfn_ = 0;
};

} // namespace faultline::os
