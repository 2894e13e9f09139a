// Accesses that may raise SIGSEGV, for tests that expect it (guard pages,
// destroyed runtimes, PROT_NONE): the signal is caught on the faulting
// thread and reported as a result instead of killing the test program.
#pragma once

#include <csetjmp>
#include <csignal>

namespace faultline::testing {

inline thread_local sigjmp_buf* t_segv_jump = nullptr;

inline void on_guarded_segv(int sig)
{
    if (t_segv_jump)
        siglongjmp(*t_segv_jump, 1);
    // Not a guarded access: die of it as if no handler were installed.
    signal(sig, SIG_DFL);
    raise(sig);
}

// Routes SIGSEGV to the guarded accesses below for the scope.
class SegvCatcher {
public:
    SegvCatcher()
    {
        struct sigaction sa {};
        sa.sa_handler = on_guarded_segv;
        sigaction(SIGSEGV, &sa, &old_);
    }
    ~SegvCatcher() { sigaction(SIGSEGV, &old_, nullptr); }
    SegvCatcher(const SegvCatcher&) = delete;
    SegvCatcher& operator=(const SegvCatcher&) = delete;

private:
    struct sigaction old_ {};
};

// These race with the runtime's mprotect/munmap on purpose in some tests;
// TSan would see the kernel changing the mapping as a race with the access,
// so they are not instrumented.

// Reads one byte; false if the read raised SIGSEGV (needs a SegvCatcher).
__attribute__((no_sanitize("thread"), noinline)) inline bool try_read(const volatile char* p, char* out)
{
    sigjmp_buf jump;
    t_segv_jump = &jump;
    if (sigsetjmp(jump, 1) != 0) {
        t_segv_jump = nullptr;
        return false;
    }
    *out = *p;
    t_segv_jump = nullptr;
    return true;
}

// Writes one byte; false if the write raised SIGSEGV (needs a SegvCatcher).
__attribute__((no_sanitize("thread"), noinline)) inline bool try_write(volatile char* p, char v)
{
    sigjmp_buf jump;
    t_segv_jump = &jump;
    if (sigsetjmp(jump, 1) != 0) {
        t_segv_jump = nullptr;
        return false;
    }
    *p = v;
    t_segv_jump = nullptr;
    return true;
}

} // namespace faultline::testing
