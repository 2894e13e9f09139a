// memory/anonymous_vm_object.h — zero-filled memory.
//
// A read fault maps the shared zero page (UFFDIO_ZEROPAGE); a write fault
// installs zeroed private pages. Either way the object installs a whole
// fault-around window of still-unpopulated pages per event, because one
// userfaultfd round trip costs about ten native faults (docs/performance.md).
#pragma once

#include "memory/vm_object.h"

#include <faultline/result.h>

#include <boost/smart_ptr/intrusive_ptr.hpp>

namespace faultline::memory {

class AnonymousVMObject final : public VMObject {
public:
    static Result<boost::intrusive_ptr<AnonymousVMObject>> try_create_with_size(size_t size, size_t page_size);

    const char* kind_name() const noexcept override { return "anonymous"; }
    FaultOutcome handle_missing_page(const FaultContext&, fault::PageInstaller&, uint64_t* pages_installed) noexcept override;

private:
    AnonymousVMObject(size_t size, size_t page_size, std::atomic<uint8_t>* states)
        : VMObject(size, page_size, states)
    {
    }
};

} // namespace faultline::memory
