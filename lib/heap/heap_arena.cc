#include "heap/heap_arena.h"

#include <mimalloc.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace faultline::heap {

namespace {

// mimalloc hands arena memory out in blocks of one segment (32 MiB in 2.0)
// and wants the arena aligned to a segment: 64 MiB covers both with room.
constexpr size_t kArenaAlign = size_t(64) << 20;

// "64G", "512M", "1048576": bytes, with an optional binary suffix.
bool parse_size(const char* text, size_t& out) noexcept
{
    if (!text || !*text)
        return false;
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-')
        return false;
    unsigned shift = 0;
    switch (*end) {
    case '\0':
        break;
    case 'k': case 'K': shift = 10; ++end; break;
    case 'm': case 'M': shift = 20; ++end; break;
    case 'g': case 'G': shift = 30; ++end; break;
    case 't': case 'T': shift = 40; ++end; break;
    default:
        return false;
    }
    if (*end != '\0' || (shift && n > (~0ull >> shift)))
        return false;
    out = size_t(n << shift);
    return true;
}

} // namespace

bool HeapArena::options_from_env(HeapOptions& out, char* error, size_t error_size) noexcept
{
    if (const char* size = getenv("FAULTLINE_HEAP_SIZE")) {
        size_t bytes = 0;
        if (!parse_size(size, bytes) || bytes < kArenaAlign) {
            snprintf(error, error_size, "FAULTLINE_HEAP_SIZE=%s: expected a size of at least 64M (e.g. 8G)", size);
            return false;
        }
        out.heap_size = (bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
    }
    if (const char* budget = getenv("FAULTLINE_BUDGET")) {
        size_t bytes = 0;
        // One eviction batch (64 pages) is the least a budget can be.
        const size_t least = size_t(64) * size_t(sysconf(_SC_PAGESIZE));
        if (!parse_size(budget, bytes) || bytes < least) {
            snprintf(error, error_size, "FAULTLINE_BUDGET=%s: expected a size of at least %zuK (e.g. 512M)", budget,
                least >> 10);
            return false;
        }
        out.budget = bytes;
    }
    if (const char* swap = getenv("FAULTLINE_SWAP"); swap && *swap)
        out.swap_dir = swap;
    // "1": every process prints; "pid:N": only process N (faultline run
    // --stats names the program it execs, not the programs it starts).
    if (const char* stats = getenv("FAULTLINE_HEAP_STATS")) {
        if (!strncmp(stats, "pid:", 4))
        {
            out.stats_pid = strtol(stats + 4, nullptr, 10);
            out.stats_at_exit = out.stats_pid == long(getpid());
        }
        else
            out.stats_at_exit = stats[0] && strcmp(stats, "0") != 0;
    }
    return true;
}

HeapArena* HeapArena::start(const HeapOptions& options, char* error, size_t error_size) noexcept
{
    // Every allocation here is the calling thread's internal allocation (the
    // preload routes it to mimalloc's backing heap): the runtime's tables
    // live in ordinary memory, never in the heap it serves.
    auto* arena = new (std::nothrow) HeapArena();
    if (!arena) {
        snprintf(error, error_size, "out of memory");
        return nullptr;
    }
    arena->options_ = options;
    Config config;
    // read(2), recv(2) and the like write into heap buffers from the kernel:
    // a user-mode-only userfaultfd would make them fail with EFAULT on an
    // untouched page. Such a heap would corrupt programs; refuse instead.
    config.uffd_mode = UffdMode::Full;
    config.arena_size = options.heap_size + kArenaAlign;
    if (options.budget) {
        // The heap's cold pages go to a swap file of the runtime's own (at
        // most the heap's size of it).
        config.memory_budget = options.budget;
        config.swap_size = options.heap_size;
        if (options.swap_dir)
            config.swap_path = options.swap_dir;
    }
    auto runtime = Runtime::create(config);
    if (!runtime) {
        snprintf(error, error_size, "cannot start the runtime: %s", runtime.error().message());
        delete arena;
        return nullptr;
    }
    arena->runtime_ = std::move(*runtime);
    // NoReserve: the heap is reserved address space; memory is committed
    // page by page as the program touches it, as glibc's heap is.
    auto base = arena->runtime_->map_anonymous(
        { .size = options.heap_size, .alignment = kArenaAlign, .flags = RegionFlags::NoReserve, .name = "faultline-heap" });
    if (!base) {
        snprintf(error, error_size, "cannot map the heap (%zu bytes): %s", options.heap_size, base.error().message());
        delete arena;
        return nullptr;
    }
    arena->base_ = *base;
    arena->size_ = options.heap_size;
    mi_arena_id_t id = 0;
    arena->swapping_ = arena->runtime_->stats().swap_enabled;
    // Not large pages, zeroed (untouched pages are zero-filled), any NUMA
    // node, exclusive. Committed (the runtime serves every page) — except
    // under a budget: mimalloc gives freed memory back (madvise
    // MADV_DONTNEED, which the preload routes to the runtime's discard,
    // freeing the pages' swap slots) only from memory it was given
    // uncommitted; its "commit" is then an mprotect to read-write, which
    // the region already is.
    const bool committed = !arena->swapping_;
    if (!mi_manage_os_memory_ex(arena->base_, arena->size_, committed, false, true, -1, true, &id)) {
        snprintf(error, error_size, "mimalloc refused the heap region");
        delete arena;
        return nullptr;
    }
    arena->arena_id_ = id;
    if (options.budget && !arena->swapping_) {
        snprintf(error, error_size, "a heap budget needs write-protect faults on anonymous memory (Linux 5.7)");
        delete arena;
        return nullptr;
    }
    return arena;
}

bool HeapArena::adopt_thread() noexcept
{
    mi_heap_t* heap = mi_heap_new_in_arena(arena_id_);
    if (!heap)
        return false;
    mi_heap_set_default(heap);
    return true;
}

int HeapArena::discard(uintptr_t address, size_t length) noexcept
{
    auto done = runtime_->discard(reinterpret_cast<void*>(address), length);
    return done ? 0 : -done.error().code();
}

bool HeapArena::contains(const void* p) const noexcept
{
    const auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base_);
    return a >= b && a < b + size_;
}

} // namespace faultline::heap
