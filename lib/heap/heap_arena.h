// heap/heap_arena.h — the preloaded heap's memory: one faultline region
// handed to mimalloc as an exclusive arena.
//
// libfaultline_malloc.so (heap/preload.cc) puts an unmodified program's heap
// in memory the runtime serves. The allocator itself is mimalloc (Debian's
// libmimalloc2.0): docs/heap.md says why it and not jemalloc, and why not a
// home-made one. This class owns the runtime and the region:
//
//   - start() creates a runtime and maps one NoReserve anonymous region, the
//     heap, then gives it to mimalloc with mi_manage_os_memory_ex(exclusive)
//     — no other heap may take memory from it, and heaps made for it take
//     memory from nothing else;
//   - each application thread gets a mimalloc heap in that arena the first
//     time it allocates (mi_heap_new_in_arena), made its default heap, so
//     every mi_* call on the thread lands in faultline memory;
//   - the runtime's own threads never do: their hook marks them internal and
//     they keep mimalloc's backing heap over ordinary mmap memory (a handler
//     thread allocating from the heap it serves could fault on its own
//     allocation and wait for itself).
//
// Started once, from the library's constructor, and never destroyed: a heap
// is in use until the process ends (destructors and atexit handlers of other
// libraries free into it after ours would have run).
#pragma once

#include <faultline/runtime.h>

#include <cstddef>
#include <memory>

namespace faultline::heap {

struct HeapOptions {
    size_t heap_size = size_t(32) << 30; // bytes reserved for the heap
    bool stats_at_exit = false;          // print statistics to stderr at exit
    long stats_pid = 0;                  // ...only in this process (not its fork children); 0 = any
    // FAULTLINE_BUDGET: bytes of heap kept resident (0 = no budget); the
    // rest is swapped out to a file in FAULTLINE_SWAP (a directory; empty:
    // $TMPDIR or /tmp).
    uint64_t budget = 0;
    const char* swap_dir = nullptr;
};

class HeapArena {
public:
    // Reads FAULTLINE_HEAP_SIZE and FAULTLINE_HEAP_STATS (docs/heap.md).
    // On a malformed value: false, with a message in `error`.
    static bool options_from_env(HeapOptions& out, char* error, size_t error_size) noexcept;
    // Creates the runtime and the arena. On failure: nullptr and a message
    // that names the fix in `error` (the preload then refuses to start).
    static HeapArena* start(const HeapOptions& options, char* error, size_t error_size) noexcept;

    // The calling thread's heap in the arena, made its default (created on
    // first use; false if mimalloc could not make one).
    bool adopt_thread() noexcept;
    bool contains(const void* p) const noexcept;
    // True when the heap is under a budget with swap: pages the program
    // drops itself (madvise) must then go through discard(), or a swapped
    // page's slot would outlive it and come back instead of zeros.
    bool swapping() const noexcept { return swapping_; }
    // Drops the heap pages of [address, address+length) the way
    // MADV_DONTNEED does, through the runtime (slots freed, pages
    // uncharged). 0 or -errno.
    int discard(uintptr_t address, size_t length) noexcept;
    Runtime& runtime() noexcept { return *runtime_; }
    void* base() const noexcept { return base_; }
    size_t size() const noexcept { return size_; }
    const HeapOptions& options() const noexcept { return options_; }

private:
    HeapArena() = default;
    std::unique_ptr<Runtime> runtime_;
    void* base_ = nullptr;
    size_t size_ = 0;
    int arena_id_ = 0;
    HeapOptions options_;
    bool swapping_ = false;
};

} // namespace faultline::heap
