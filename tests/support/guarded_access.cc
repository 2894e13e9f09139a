#include "support/guarded_access.h"

#include <csetjmp>
#include <csignal>
#include <mutex>

namespace faultline::testing {

namespace {

thread_local sigjmp_buf* t_jump = nullptr;

void on_signal(int sig, siginfo_t*, void*)
{
    if (t_jump) {
        sigjmp_buf* jump = t_jump;
        t_jump = nullptr;
        siglongjmp(*jump, sig);
    }
    // Not inside guarded_access: behave as if unhandled.
    signal(sig, SIG_DFL);
    raise(sig);
}

void install_once()
{
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa {};
        sa.sa_sigaction = on_signal;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
        sigaction(SIGBUS, &sa, nullptr);
    });
}

} // namespace

int guarded_access(const std::function<void()>& fn)
{
    install_once();
    sigjmp_buf jump;
    if (int sig = sigsetjmp(jump, 1); sig != 0)
        return sig;
    t_jump = &jump;
    fn();
    t_jump = nullptr;
    return 0;
}

} // namespace faultline::testing
