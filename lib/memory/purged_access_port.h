// memory/purged_access_port.h — where a purgeable object sends a touch of a
// purged page that a user callback must judge.
//
// Declared beside the objects (like PageSink) so that lib/memory needs
// nothing from the runtime: the runtime's purge worker implements it and
// runs the callback on its own thread — never on a handler thread — then
// posts the fault's completion (0: install zeros, negative: SIGBUS).
#pragma once

#include "memory/fault_context.h"

#include <cstdint>

namespace faultline::memory {

class PurgeableVMObject;

class PurgedAccessPort {
public:
    // Handler thread: queues the request; false when the queue is full or
    // the worker has stopped (the fault is then retried). Never blocks on
    // anything but a short mutex, never allocates.
    virtual bool post(PurgeableVMObject& object, uintptr_t page, PendingToken token, CompletionPort& completions) noexcept = 0;

protected:
    ~PurgedAccessPort() = default;
};

} // namespace faultline::memory
