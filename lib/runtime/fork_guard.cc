#include "runtime/fork_guard.h"

#include <atomic>
#include <mutex>
#include <pthread.h>

namespace faultline {

namespace {

std::atomic<uint64_t> g_generation { 0 };

void after_fork_in_child() noexcept { g_generation.fetch_add(1, std::memory_order_relaxed); }

void install_handler() noexcept
{
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(nullptr, nullptr, after_fork_in_child); });
}

} // namespace

ForkGuard::ForkGuard() noexcept
{
    install_handler();
    generation_ = current();
}

uint64_t ForkGuard::current() noexcept { return g_generation.load(std::memory_order_relaxed); }

} // namespace faultline
