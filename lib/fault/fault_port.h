// fault/fault_port.h — everything the dispatcher does to the kernel.
//
// Objects fill pages through the PageSink half; the dispatcher also wakes
// threads and delivers SIGBUS. The handler threads use UffdFaultPort (the
// userfaultfd); unit tests use a fake that records every call, so the
// dispatcher's decisions are tested without a kernel.
#pragma once

#include "fault/wake_set.h"
#include "memory/io_port.h"
#include "memory/page_sink.h"

#include <faultline/types.h>

#include <cstddef>
#include <cstdint>

namespace faultline::fault {

class FaultPort : public memory::PageSink, public Waker {
public:
    // Makes the faulting thread (`tid`, 0 if unknown) take SIGBUS at `page`
    // when it retries the access. Returns false if no way worked (the thread
    // will simply fault again).
    virtual bool raise_sigbus(uintptr_t page, int tid, Access access) noexcept = 0;
    // Where objects queue the I/O their faults need (nullptr: none), and the
    // submission of what was queued, once per batch.
    virtual memory::IoPort* io() noexcept { return nullptr; }
    virtual void submit_io() noexcept {}

protected:
    ~FaultPort() = default;
};

} // namespace faultline::fault
