// tools/stress/signals.cc — the SIGSEGV/SIGBUS guard and the guarded
// accesses (see signals.h).
//
// The jump buffers are taken with sigsetjmp(…, 0), which saves no signal
// mask: saving it would cost a system call on every access, and faults are
// the exception. The handler restores the thread's usual mask itself before
// it jumps, since whatever ran the handler may have blocked signals for it
// (ThreadSanitizer's wrapper runs handlers with every signal blocked; leaving
// them blocked would turn the next expected SIGSEGV into a fatal one).
#include "signals.h"

#include "model.h" // kWordMask: the word index in the values written

#include <atomic>
#include <csetjmp>
#include <csignal>
#include <cstring>

#include <pthread.h>
#include <unistd.h>

namespace stress {

namespace {

struct Guard {
    sigjmp_buf jump;
    volatile sig_atomic_t armed = 0;
    sigset_t mask; // the thread's signal mask outside the handler
};
thread_local Guard t_guard;

std::atomic<uintptr_t> g_arena_lo { 0 };
std::atomic<uintptr_t> g_arena_hi { 0 };
struct sigaction g_previous_segv;
struct sigaction g_previous_bus;

void write_stderr(const char* s) { (void)!write(2, s, std::strlen(s)); }

void write_hex(uintptr_t v)
{
    char buf[2 + 16 + 1];
    char* p = buf + sizeof buf;
    *--p = 0;
    do {
        *--p = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    *--p = 'x';
    *--p = '0';
    write_stderr(p);
}

void on_fault_signal(int sig, siginfo_t* info, void*)
{
    const uintptr_t a = uintptr_t(info->si_addr);
    const bool in_arena = a >= g_arena_lo.load(std::memory_order_relaxed) && a < g_arena_hi.load(std::memory_order_relaxed);
    if (sig == SIGSEGV && t_guard.armed && in_arena) {
        t_guard.armed = 0;
        pthread_sigmask(SIG_SETMASK, &t_guard.mask, nullptr);
        siglongjmp(t_guard.jump, 1);
    }
    // Only async-signal-safe calls from here on.
    write_stderr(sig == SIGSEGV ? "stress: FAIL: unexpected SIGSEGV" : "stress: FAIL: unexpected SIGBUS");
    if (info->si_code <= 0) {
        write_stderr(" sent by a process or thread, not raised by an access\n");
    } else {
        write_stderr(" at ");
        write_hex(a);
        write_stderr(!in_arena ? " (outside the arena: a crash in the tool or the runtime)\n"
                               : " (in the arena, where no access expected one)\n");
    }
    // Hand the signal to whoever had it before (a sanitizer reports it) or to
    // the default action. A fault raised by an instruction recurs when the
    // handler returns; a signal sent by a thread must be sent again.
    struct sigaction previous = sig == SIGSEGV ? g_previous_segv : g_previous_bus;
    if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler == SIG_IGN)
        previous.sa_handler = SIG_DFL;
    sigaction(sig, &previous, nullptr);
    if (info->si_code <= 0)
        raise(sig);
}

// The accesses themselves live in their own functions, for two reasons.
// Nothing they change is then live across sigsetjmp in the caller (which
// -Wclobbered rightly warns about). And they can be kept out of ThreadSanitizer's
// instrumentation: TSan implements non-relaxed atomics in its runtime under
// internal locks, so a SIGSEGV taken inside it and left by siglongjmp would
// leave those locks held. Region memory is what the run tests, not state the
// threads share through the tool: the kernel writes it behind TSan's back
// (UFFDIO_COPY, MADV_DONTNEED) anyway, and every model variable stays
// instrumented.
//
// Loads are acquire loads: an accessor must not let its closing read of the
// slot's sequence move before them (see Accessor::visit), and acquire orders
// every later access after the load without a fence, which TSan cannot model.
// On x86-64 an acquire load is a plain load.
#define STRESS_TOUCH [[gnu::noinline, gnu::no_sanitize("thread")]]

// Copies the spans' words of `src` to the same positions of `out`.
STRESS_TOUCH void copy_words(const uint64_t* src, uint64_t* out, const Span* spans, unsigned count)
{
    for (unsigned k = 0; k < count; ++k)
        for (size_t i = spans[k].lo; i < spans[k].hi; i += spans[k].stride)
            out[i] = __atomic_load_n(src + i, __ATOMIC_ACQUIRE);
}

STRESS_TOUCH void store_words(uint64_t* dst, size_t first, size_t stride, size_t words, uint64_t value_base)
{
    for (size_t w = first; w < words; w += stride)
        __atomic_store_n(dst + w, value_base | (w & kWordMask), __ATOMIC_RELAXED);
}

// A write access that changes nothing: an atomic add of zero. Used to check
// that a page is (or is not) writable without disturbing the model.
STRESS_TOUCH void touch_for_write(uint64_t* p) { __atomic_fetch_add(p, 0, __ATOMIC_ACQ_REL); }

STRESS_TOUCH void touch_for_read(const uint64_t* p)
{
    volatile uint64_t sink = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    (void)sink;
}

} // namespace

void install_signal_handlers()
{
    struct sigaction sa {};
    sa.sa_sigaction = on_fault_signal;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_previous_segv);
    sigaction(SIGBUS, &sa, &g_previous_bus);
}

void prepare_thread_for_faults() { pthread_sigmask(SIG_SETMASK, nullptr, &t_guard.mask); }

void set_guarded_arena(uintptr_t lo, uintptr_t hi)
{
    g_arena_lo.store(lo);
    g_arena_hi.store(hi);
}

bool guarded_read(const uint64_t* src, uint64_t* out, const Span* spans, unsigned count)
{
    if (sigsetjmp(t_guard.jump, 0) != 0)
        return false;
    t_guard.armed = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    copy_words(src, out, spans, count);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_guard.armed = 0;
    return true;
}

bool guarded_read(const uint64_t* src, uint64_t* out, size_t words)
{
    const Span all { 0, words, 1 };
    return guarded_read(src, out, &all, 1);
}

bool guarded_write(uint64_t* dst, size_t first, size_t stride, size_t words, uint64_t value_base)
{
    if (sigsetjmp(t_guard.jump, 0) != 0)
        return false;
    t_guard.armed = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    store_words(dst, first, stride, words, value_base);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_guard.armed = 0;
    return true;
}

bool guarded_probe_write(uint64_t* p)
{
    if (sigsetjmp(t_guard.jump, 0) != 0)
        return false;
    t_guard.armed = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    touch_for_write(p);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_guard.armed = 0;
    return true;
}

bool guarded_probe_read(const uint64_t* p)
{
    if (sigsetjmp(t_guard.jump, 0) != 0)
        return false;
    t_guard.armed = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    touch_for_read(p);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_guard.armed = 0;
    return true;
}

} // namespace stress
