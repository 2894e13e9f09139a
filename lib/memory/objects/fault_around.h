// memory/objects/fault_around.h — which neighbours to install with a fault.
//
// One userfaultfd round trip costs about ten native faults, so objects
// install a window of pages per fault event. How large a window pays off
// depends on the toucher: a dense (sequential) first touch wants the largest
// window, a sparse toucher wastes every page it does not touch. The window
// adapts the way the kernel's file readahead does ("context readahead"): it
// looks at the pages around the fault instead of keeping per-stream state.
//   - A run of populated pages directly below the fault means a stream going
//     up: the window starts at the fault and is twice that run (at least
//     min, at most max), so a sequential toucher's windows double
//     32 -> 64 -> 192 -> 512 and stay there.
//   - A run directly above means a stream going down (a stack): the window
//     ends at the fault, mirrored.
//   - No stream, but half of the aligned block of `max` pages around the
//     fault already populated (a random toucher filling the region): the
//     whole block.
//   - Neither: an isolated fault gets the aligned block of `min` pages
//     around it (concurrent faults in one block then agree on the window),
//     which is exactly the fixed window of a non-adaptive configuration.
// Everything is computed from the object's page states: no lock, no
// allocation, no state to keep per region or per thread.
#pragma once

#include "memory/fault_context.h"
#include "memory/page_states.h"

#include <cstddef>

namespace faultline::memory {

struct Window {
    size_t first = 0; // object page
    size_t count = 0;
    // A stream (a run of populated pages next to the fault): the toucher is
    // about to touch the window, so it should wait for it.
    bool stream = false;
    size_t end() const noexcept { return first + count; }
};

// The window for a fault on object page `page`, inside [floor, ceiling).
// Always contains `page`.
Window choose_fault_around_window(const PageStates& states, size_t page, size_t floor, size_t ceiling, FaultAround around) noexcept;

} // namespace faultline::memory
