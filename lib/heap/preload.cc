// heap/preload.cc — libfaultline_malloc.so: the malloc family of an
// unmodified program, over the faultline heap (heap/heap_arena.h).
//
//   LD_PRELOAD=libfaultline_malloc.so program ...   (or: faultline run)
//
// Routing is per thread and decided once, on the thread's first allocation:
//   - before the heap is up (the loader, libc and other constructors),
//     allocations come from mimalloc's backing heap over ordinary memory
//     and the thread decides again later;
//   - the runtime's own threads are marked internal by the runtime's thread
//     hook before they allocate: backing heap, forever;
//   - every other thread gets a heap in the faultline arena as its default.
// free() and malloc_usable_size() need no routing: mimalloc finds a block's
// heap from the block. Where glibc defines behaviour mimalloc does not
// share, glibc's is kept (realloc(p, 0) frees and returns NULL; memalign
// rounds a non-power-of-two alignment up) — docs/heap.md lists them.
#include "heap/heap_arena.h"

#include <mimalloc.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FAULTLINE_HEAP_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using faultline::heap::HeapArena;
using faultline::heap::HeapOptions;

enum class ThreadKind : uint8_t { Undecided, Internal, Application };

// Initial-exec: a preloaded library's TLS is in the static block, so reading
// it never calls into the loader (which could allocate).
thread_local ThreadKind t_kind __attribute__((tls_model("initial-exec"))) = ThreadKind::Undecided;
std::atomic<HeapArena*> g_arena { nullptr };
timespec g_started {};

void decide_slow() noexcept
{
    HeapArena* arena = g_arena.load(std::memory_order_acquire);
    if (!arena)
        return; // not up yet: backing heap, and decide again next time
    // A thread mimalloc cannot give a heap in the arena (out of memory for
    // the heap's own bookkeeping) keeps the backing heap rather than fail.
    t_kind = arena->adopt_thread() ? ThreadKind::Application : ThreadKind::Internal;
}

inline void decide() noexcept
{
    if (__builtin_expect(t_kind == ThreadKind::Undecided, 0))
        decide_slow();
}

void on_runtime_thread() { t_kind = ThreadKind::Internal; }

bool power_of_two(size_t n) { return n && !(n & (n - 1)); }

// glibc aligns every block to 16 bytes on x86-64 and programs rely on it
// (SSE loads of small structs); mimalloc's small size classes are whole
// words (a 24-byte block is 8-aligned). Sizes rounded to 16 land in classes
// that are multiples of 16, and mimalloc's larger classes all are.
constexpr size_t kMinAlign = 16;
inline bool round_size(size_t& size)
{
    if (size > SIZE_MAX - (kMinAlign - 1))
        return false;
    size = (size + kMinAlign - 1) & ~(kMinAlign - 1);
    return true;
}

// mimalloc does not always set errno when it fails; glibc always says ENOMEM.
inline void* or_enomem(void* p)
{
    if (!p)
        errno = ENOMEM;
    return p;
}

size_t page_size()
{
    static const size_t page = size_t(sysconf(_SC_PAGESIZE));
    return page;
}

// Writes without stdio buffers or allocation: safe in a constructor that
// is refusing to start, and at exit.
void say(const char* text) { (void)!write(STDERR_FILENO, text, strlen(text)); }

[[noreturn]] void refuse(const char* why)
{
    char line[768];
    snprintf(line, sizeof line, "faultline heap: %s; the program was not started (docs/heap.md)\n", why);
    say(line);
    _exit(1);
}

void print_stats()
{
    HeapArena* arena = g_arena.load(std::memory_order_acquire);
    if (!arena)
        return;
    // A fork child (a shell's subshell) inherits the handler, not the
    // request: "pid:N" names one process.
    if (arena->options().stats_pid && arena->options().stats_pid != long(getpid()))
        return;
    timespec now {};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const double seconds = double(now.tv_sec - g_started.tv_sec) + double(now.tv_nsec - g_started.tv_nsec) / 1e9;
    rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    const faultline::RuntimeStats s = arena->runtime().stats();
    char line[768];
    const unsigned long long page = page_size();
    char budget[96];
    if (s.memory_budget)
        snprintf(budget, sizeof budget, "budget %llu KiB, resident %llu KiB", (unsigned long long)s.memory_budget >> 10,
            (unsigned long long)s.budget_resident_bytes >> 10);
    else
        snprintf(budget, sizeof budget, "no budget");
    snprintf(line, sizeof line,
        "faultline heap [pid %d]: %.3f s, peak RSS %ld KiB; faults: %llu events (%llu write-protect, %llu minor, "
        "%llu deduplicated), %llu pages installed; swapped out %llu KiB, in %llu KiB (%s)\n",
        int(getpid()), seconds, ru.ru_maxrss, (unsigned long long)s.fault_events, (unsigned long long)s.write_protect_faults,
        (unsigned long long)s.minor_faults, (unsigned long long)s.faults_deduplicated, (unsigned long long)s.pages_installed,
        (unsigned long long)(s.swapped_out * page) >> 10, (unsigned long long)(s.swapped_in * page) >> 10, budget);
    say(line);
}

__attribute__((constructor)) void start_heap()
{
    clock_gettime(CLOCK_MONOTONIC, &g_started);
    // This thread's allocations while the runtime starts are the runtime's.
    t_kind = ThreadKind::Internal;
    faultline::set_runtime_thread_hook(on_runtime_thread);
    HeapOptions options;
    char error[512];
    if (!HeapArena::options_from_env(options, error, sizeof error))
        refuse(error);
    HeapArena* arena = HeapArena::start(options, error, sizeof error);
    if (!arena)
        refuse(error);
    g_arena.store(arena, std::memory_order_release);
    t_kind = ThreadKind::Undecided; // from here on, the program's heap
    if (options.stats_at_exit)
        atexit(print_stats);
}

} // namespace

FAULTLINE_HEAP_EXPORT void* malloc(size_t size) noexcept
{
    decide();
    return or_enomem(round_size(size) ? mi_malloc(size) : nullptr);
}

FAULTLINE_HEAP_EXPORT void free(void* p) noexcept
{
    mi_free(p);
}

FAULTLINE_HEAP_EXPORT void* calloc(size_t count, size_t size) noexcept
{
    size_t bytes = 0;
    if (__builtin_mul_overflow(count, size, &bytes) || !round_size(bytes)) {
        errno = ENOMEM;
        return nullptr;
    }
    decide();
    return or_enomem(mi_zalloc(bytes));
}

FAULTLINE_HEAP_EXPORT void* realloc(void* p, size_t size) noexcept
{
    if (p && size == 0) {
        // glibc frees and returns NULL; mimalloc would return a minimal block.
        mi_free(p);
        return nullptr;
    }
    decide();
    // On failure the old block stays allocated, as realloc(3) requires.
    return or_enomem(round_size(size) ? mi_realloc(p, size) : nullptr);
}

FAULTLINE_HEAP_EXPORT void* reallocarray(void* p, size_t count, size_t size) noexcept
{
    size_t bytes = 0;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return nullptr;
    }
    return realloc(p, bytes);
}

FAULTLINE_HEAP_EXPORT int posix_memalign(void** out, size_t alignment, size_t size) noexcept
{
    if (!power_of_two(alignment) || alignment % sizeof(void*) != 0)
        return EINVAL;
    decide();
    void* p = round_size(size) ? mi_malloc_aligned(size, alignment < kMinAlign ? kMinAlign : alignment) : nullptr;
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

FAULTLINE_HEAP_EXPORT void* aligned_alloc(size_t alignment, size_t size) noexcept
{
    if (!power_of_two(alignment)) {
        errno = EINVAL;
        return nullptr;
    }
    decide();
    return or_enomem(round_size(size) ? mi_malloc_aligned(size, alignment < kMinAlign ? kMinAlign : alignment) : nullptr);
}

FAULTLINE_HEAP_EXPORT void* memalign(size_t alignment, size_t size) noexcept
{
    // glibc treats an alignment below its own (0 included) as its own, and
    // rounds one that is not a power of two up to one.
    if (alignment <= kMinAlign)
        alignment = kMinAlign;
    else if (!power_of_two(alignment))
        alignment = alignment > (SIZE_MAX >> 1) ? 0 : size_t(1) << (64 - __builtin_clzll((unsigned long long)alignment));
    if (!alignment) {
        errno = EINVAL;
        return nullptr;
    }
    decide();
    return or_enomem(round_size(size) ? mi_malloc_aligned(size, alignment < kMinAlign ? kMinAlign : alignment) : nullptr);
}

FAULTLINE_HEAP_EXPORT void* valloc(size_t size) noexcept
{
    decide();
    return or_enomem(round_size(size) ? mi_malloc_aligned(size, page_size()) : nullptr);
}

FAULTLINE_HEAP_EXPORT void* pvalloc(size_t size) noexcept
{
    const size_t page = page_size();
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return nullptr;
    }
    decide();
    return or_enomem(mi_malloc_aligned(size ? (size + page - 1) / page * page : page, page));
}

FAULTLINE_HEAP_EXPORT size_t malloc_usable_size(void* p) noexcept
{
    return p ? mi_usable_size(p) : 0;
}

// The program (or mimalloc, when it returns freed memory) dropping heap
// pages: with swap, the runtime must hear of it — a swapped page whose slot
// outlived the drop would come back with its old bytes where the kernel
// promises zeros, and its slot would never be freed. Every other call, and
// the runtime's own (its threads, and the discard below), goes straight to
// the kernel.
static thread_local bool t_in_discard __attribute__((tls_model("initial-exec"))) = false;

FAULTLINE_HEAP_EXPORT int madvise(void* address, size_t length, int advice) noexcept
{
    HeapArena* arena = g_arena.load(std::memory_order_acquire);
    const bool drops = advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE;
    const uintptr_t a = reinterpret_cast<uintptr_t>(address);
    const size_t page = page_size();
    if (!arena || !arena->swapping() || !drops || t_in_discard || t_kind == ThreadKind::Internal || a % page
        || length > SIZE_MAX - page)
        return int(syscall(SYS_madvise, address, length, advice));
    const uintptr_t base = reinterpret_cast<uintptr_t>(arena->base());
    const uintptr_t end = a + (length + page - 1) / page * page;
    const uintptr_t lo = a > base ? a : base, hi = end < base + arena->size() ? end : base + arena->size();
    if (lo >= hi)
        return int(syscall(SYS_madvise, address, length, advice));
    // The parts outside the heap as asked, the heap's through the runtime.
    if (a < lo && syscall(SYS_madvise, address, lo - a, advice) != 0)
        return -1;
    if (hi < end && syscall(SYS_madvise, reinterpret_cast<void*>(hi), end - hi, advice) != 0)
        return -1;
    t_in_discard = true;
    const int rc = arena->discard(lo, hi - lo);
    t_in_discard = false;
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}

// For tests and tools: where the heap is (0 when it is not up).
FAULTLINE_HEAP_EXPORT int faultline_heap_range(void** base, size_t* size) noexcept
{
    HeapArena* arena = g_arena.load(std::memory_order_acquire);
    if (!arena)
        return -ENODEV;
    *base = arena->base();
    *size = arena->size();
    return 0;
}

// For tests and tools: the heap runtime's statistics as JSON, written into
// `buffer` (NUL-terminated, cut to `size`); the length it needed.
FAULTLINE_HEAP_EXPORT size_t faultline_heap_json(char* buffer, size_t size) noexcept
{
    HeapArena* arena = g_arena.load(std::memory_order_acquire);
    if (!arena)
        return 0;
    const std::string json = arena->runtime().to_json();
    if (size) {
        const size_t n = json.size() < size - 1 ? json.size() : size - 1;
        memcpy(buffer, json.data(), n);
        buffer[n] = '\0';
    }
    return json.size();
}
