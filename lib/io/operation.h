// io/operation.h — what an I/O completion is delivered to.
//
// A submitter embeds an Operation in state it owns (an object's read slot,
// a sync batch) and keeps it alive until the completion arrives; the ring
// carries the Operation's address as the submission's user_data and, when
// the completion is reaped, calls `complete` with the kernel's result (bytes
// or -errno) on the reaping thread. No allocation, no lookup.
#pragma once

#include <cstdint>

namespace faultline::io {

struct Operation {
    void (*complete)(Operation* self, int32_t result) noexcept = nullptr;
};

} // namespace faultline::io
