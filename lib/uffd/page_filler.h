// uffd/page_filler.h — the kernel's fill modes, one verb each.
//
// As the kernel's mfill_atomic has one entry with several modes (COPY,
// ZEROPAGE, CONTINUE, POISON, each optionally write-protected), the filler
// has one verb per mode and one place that turns the kernel's answers into
// a FillResult (uffd/fill_result.h). Every verb installs with DONTWAKE: the
// caller wakes the threads it served once, over the pages it actually
// installed (fault/wake_set.h).
//
// One PageFiller belongs to one handler thread. It owns a read-only buffer
// of zeros (mapped when the thread starts, never on the fault path) that is
// the source of every private zero-filled page.
#pragma once

#include "uffd/fill_result.h"
#include "uffd/userfaultfd.h"

#include <cstddef>
#include <cstdint>

namespace faultline::uffd {

class PageFiller {
public:
    // `max_pages` bounds one zero-fill ioctl (the largest fault-around
    // window); longer ranges are filled in chunks.
    PageFiller(Userfaultfd& uffd, size_t page_size, size_t max_pages, bool use_zeropage, FillCounters& counters) noexcept;
    ~PageFiller();
    PageFiller(const PageFiller&) = delete;
    PageFiller& operator=(const PageFiller&) = delete;

    bool ready() const noexcept { return zeros_ != nullptr; }
    size_t page_size() const noexcept { return page_size_; }

    FillResult zero(uintptr_t start, size_t len, ZeroFill how) noexcept;
    FillResult copy(uintptr_t dst, const void* src, size_t len, bool write_protect) noexcept;
    // UFFDIO_CONTINUE: map pages that are already in the page cache.
    FillResult map_cached(uintptr_t dst, size_t len, bool write_protect) noexcept;
    FillResult write_protect(uintptr_t start, size_t len, bool protect) noexcept;
    FillResult poison(uintptr_t start, size_t len) noexcept;
    // 0 or -errno.
    long wake(uintptr_t start, size_t len) noexcept { return uffd_.wake(start, len); }

private:
    // One ioctl's worth of a verb: the fill loop below is shared by all.
    enum class Verb : uint8_t { ZeroPage, CopyZeros, CopyZerosWp, Copy, CopyWp, Continue, ContinueWp, Poison };
    long issue(Verb verb, uintptr_t dst, const void* src, size_t len, size_t* done) noexcept;
    FillResult fill(Verb verb, uintptr_t start, const void* src, size_t len, size_t chunk) noexcept;

    Userfaultfd& uffd_;
    size_t page_size_;
    size_t max_bytes_;
    bool use_zeropage_;
    FillCounters& counters_;
    void* zeros_ = nullptr;
};

} // namespace faultline::uffd
