// io/delayed_completion.h — slow completions, for fault injection.
//
// FaultInjection's FileReadDelay and StoreReadDelay (os/fault_injection.h)
// deliver a read's completion some milliseconds after it happened, as a slow
// disk or store would, without making any runtime thread wait for it: the
// request carries one of this pool's Operations instead of its own, and when
// that completes (on whichever thread reaps it: a handler thread, the I/O
// worker, a store thread) the result is handed to one timer thread, which
// calls the real Operation once the delay has passed. A fixed pool: nothing
// is allocated but the timer thread and its state, on first use — only
// ever by a test that armed a delay. (Not for fork children: the timer
// thread is the parent's.)
#pragma once

#include "io/operation.h"

namespace faultline::io {

// An Operation that delivers its result to `op` `delay_ms` milliseconds
// after it completes itself, or null when the pool is exhausted or the
// timer thread cannot start (the caller then uses `op`: not delayed).
Operation* delay_completion(Operation* op, unsigned delay_ms) noexcept;
// Gives back an Operation of delay_completion() that was never submitted
// (the queue refused the request).
void cancel_delayed(Operation* delayed) noexcept;

} // namespace faultline::io
