// fault/uffd_fault_port.h — the FaultPort of a handler thread: fills through
// its PageFiller, wakes through the userfaultfd, and delivers SIGBUS.
#pragma once

#include "fault/fault_port.h"
#include "uffd/page_filler.h"

namespace faultline::fault {

class UffdFaultPort final : public FaultPort {
public:
    // `empty_memfd` is a memfd of size 0 for the SIGBUS fallback.
    UffdFaultPort(uffd::PageFiller& filler, bool use_poison, int empty_memfd) noexcept
        : filler_(filler)
        , use_poison_(use_poison)
        , empty_memfd_(empty_memfd)
    {
    }

    size_t page_size() const noexcept override { return filler_.page_size(); }
    uffd::FillResult zero(uintptr_t start, size_t len, uffd::ZeroFill how) noexcept override { return filler_.zero(start, len, how); }
    uffd::FillResult copy(uintptr_t dst, const void* src, size_t len, bool wp) noexcept override { return filler_.copy(dst, src, len, wp); }
    uffd::FillResult map_cached(uintptr_t dst, size_t len, bool wp) noexcept override { return filler_.map_cached(dst, len, wp); }
    uffd::FillResult write_protect(uintptr_t start, size_t len, bool protect) noexcept override
    {
        return filler_.write_protect(start, len, protect);
    }
    long wake(uintptr_t start, size_t len) noexcept override { return filler_.wake(start, len); }
    bool raise_sigbus(uintptr_t page, int tid, Access access) noexcept override;

private:
    uffd::PageFiller& filler_;
    bool use_poison_;
    int empty_memfd_;
};

} // namespace faultline::fault
