#include "runtime/fork_preparation.h"

#include <atomic>
#include <mutex>
#include <pthread.h>

namespace faultline {

namespace {

// Written once per stage before the registration that reads them; never
// destroyed (atfork handlers outlive static destruction).
std::atomic<bool> installed[size_t(ForkStage::Count)];
ForkHandlers handlers_of[size_t(ForkStage::Count)];

void prepare_all()
{
    for (size_t s = 0; s < size_t(ForkStage::Count); ++s)
        if (installed[s].load(std::memory_order_acquire) && handlers_of[s].prepare)
            handlers_of[s].prepare();
}

void parent_all()
{
    for (size_t s = size_t(ForkStage::Count); s-- > 0;)
        if (installed[s].load(std::memory_order_acquire) && handlers_of[s].parent)
            handlers_of[s].parent();
}

void child_all()
{
    for (size_t s = size_t(ForkStage::Count); s-- > 0;)
        if (installed[s].load(std::memory_order_acquire) && handlers_of[s].child)
            handlers_of[s].child();
}

} // namespace

void install_fork_handlers(ForkStage stage, ForkHandlers handlers)
{
    static std::once_flag registered;
    static std::mutex lock;
    std::call_once(registered, [] { pthread_atfork(prepare_all, parent_all, child_all); });
    std::lock_guard g(lock);
    if (installed[size_t(stage)].load(std::memory_order_relaxed))
        return;
    handlers_of[size_t(stage)] = handlers;
    installed[size_t(stage)].store(true, std::memory_order_release);
}

} // namespace faultline
