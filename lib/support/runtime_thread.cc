#include "support/runtime_thread.h"

#include <faultline/runtime.h>

#include <atomic>
#include <pthread.h>

namespace faultline {

namespace {
std::atomic<void (*)()> g_hook { nullptr };
}

void set_runtime_thread_hook(void (*hook)()) noexcept
{
    g_hook.store(hook, std::memory_order_release);
}

void begin_runtime_thread(const char* name) noexcept
{
    // The hook first: naming the thread may allocate in some libcs, and
    // the hook decides where this thread's allocations come from.
    if (auto hook = g_hook.load(std::memory_order_acquire))
        hook();
    pthread_setname_np(pthread_self(), name);
}

AllSignalsBlocked::AllSignalsBlocked() noexcept
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old_);
}

AllSignalsBlocked::~AllSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

} // namespace faultline
