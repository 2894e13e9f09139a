// memory/page_sink.h — where an object puts the pages it resolves.
//
// Objects decide what a page holds; the sink places it. Declared here,
// beside the objects, so that lib/memory needs nothing from the fault
// service: the handler threads pass a sink backed by the userfaultfd
// (fault/uffd_fault_port.h), the unit tests a fake that records each call.
// Every verb places pages without waking anyone (the fault service wakes
// the threads it served, once) and returns what the kernel achieved.
#pragma once

#include "uffd/fill_result.h"

#include <cstddef>
#include <cstdint>

namespace faultline::memory {

class PageSink {
public:
    virtual size_t page_size() const noexcept = 0;
    // Zero-filled pages over [start, start+len).
    virtual uffd::FillResult zero(uintptr_t start, size_t len, uffd::ZeroFill how) noexcept = 0;
    // `len` bytes from `src` (memory the runtime owns, never a served range).
    virtual uffd::FillResult copy(uintptr_t dst, const void* src, size_t len, bool write_protect) noexcept = 0;
    // Maps pages already in the object's page cache (minor faults).
    virtual uffd::FillResult map_cached(uintptr_t dst, size_t len, bool write_protect) noexcept = 0;
    // Sets or lifts write protection on pages that are there.
    virtual uffd::FillResult write_protect(uintptr_t start, size_t len, bool protect) noexcept = 0;

protected:
    ~PageSink() = default;
};

} // namespace faultline::memory
