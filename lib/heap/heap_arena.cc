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
    // "1": every process prints; "pid:N": only process N (faultline run
    // --stats names the program it execs, not the programs it starts).
    if (const char* stats = getenv("FAULTLINE_HEAP_STATS")) {
        if (!strncmp(stats, "pid:", 4))
            out.stats_at_exit = strtol(stats + 4, nullptr, 10) == long(getpid());
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
    // Committed (the runtime serves every page), not large pages, zeroed
    // (untouched pages are zero-filled), any NUMA node, exclusive.
    if (!mi_manage_os_memory_ex(arena->base_, arena->size_, true, false, true, -1, true, &id)) {
        snprintf(error, error_size, "mimalloc refused the heap region");
        delete arena;
        return nullptr;
    }
    arena->arena_id_ = id;
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

bool HeapArena::contains(const void* p) const noexcept
{
    const auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base_);
    return a >= b && a < b + size_;
}

} // namespace faultline::heap
