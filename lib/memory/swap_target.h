// memory/swap_target.h — where the swap pager keeps evicted anonymous pages.
//
// A target stores whole pages in numbered slots (memory/swap_slots.h hands
// the numbers out). The runtime's own target is a file it owns, read and
// written with io_uring (runtime/file_swap_target.h); the far-memory store
// plugs in here too. Reads are asynchronous and queued on the faulting
// handler's I/O port, exactly like a file region's reads, so a handler never
// waits for a swap-in; writes come from the evictor thread, which may block.
#pragma once

#include "io/operation.h"
#include "memory/io_port.h"

#include <cstddef>
#include <cstdint>

namespace faultline::memory {

class SwapTarget {
public:
    virtual ~SwapTarget() = default;

    // Handler threads: queues the read of one page from `slot` into
    // `buffer` (memory the runtime owns) on `io`; `op` gets the bytes read
    // or -errno. False when nothing more can be queued now (the fault
    // retries). May complete `op` before it returns.
    virtual bool read(uint32_t slot, void* buffer, io::Operation* op, IoPort* io) noexcept = 0;

    // The evictor: writes each page to its slot and sets its result (0 or
    // -errno). Blocks until every write has finished.
    struct Write {
        uint32_t slot;
        const void* data; // a page the evictor holds write-protected
        int result;
    };
    virtual void write(Write* writes, size_t count) noexcept = 0;

    // Whoever frees a slot (a handler thread among them): its page is no
    // longer needed. Must not block or allocate; called before the slot can
    // be handed out again, so a target that deletes the old copy later must
    // do it before it stores the slot's next page. A file has nothing to do.
    virtual void release(uint32_t slot) noexcept { (void)slot; }
};

} // namespace faultline::memory
