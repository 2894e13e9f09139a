#include "memory/page_budget.h"

#include <algorithm>
#include <cerrno>

namespace faultline::memory {

PageBudget::PageBudget(size_t budget_pages, unsigned high_percent, unsigned low_percent, size_t batch_pages,
    void (*wake)(void*), void* context) noexcept
    : budget_(budget_pages)
    , high_percent_(high_percent)
    , low_percent_(low_percent)
    , batch_(batch_pages)
    , wake_(wake)
    , context_(context)
{
}

size_t PageBudget::charge(size_t want, size_t need) noexcept
{
    const size_t hard = budget() + batch_;
    size_t now = resident_.load(std::memory_order_relaxed);
    size_t got;
    do {
        const size_t room = overrun() ? want : (now < hard ? hard - now : 0);
        got = std::min(want, room);
        if (got < need || got == 0)
            return 0;
    } while (!resident_.compare_exchange_weak(now, now + got, std::memory_order_relaxed));
    // Wake the evictor when this charge crossed the high mark (and on every
    // charge while above it: a wake-up is cheap, a missed one leaves faults
    // parked until the evictor's timeout).
    if (now + got > high() && wake_)
        wake_(context_);
    return got;
}

void PageBudget::uncharge(size_t pages) noexcept
{
    size_t now = resident_.load(std::memory_order_relaxed);
    // Never below zero, whatever a caller gets wrong.
    while (!resident_.compare_exchange_weak(now, now > pages ? now - pages : 0, std::memory_order_relaxed)) {
    }
}

bool PageBudget::park(PendingToken token, CompletionPort* port) noexcept
{
    if (!token.valid() || !port)
        return false;
    {
        std::lock_guard g(waiters_lock_);
        if (waiter_count_ == kMaxWaiters)
            return false;
        tokens_[waiter_count_] = token;
        ports_[waiter_count_] = port;
        ++waiter_count_;
    }
    parked_total_.fetch_add(1, std::memory_order_relaxed);
    if (wake_)
        wake_(context_);
    return true;
}

void PageBudget::release_waiters() noexcept
{
    PendingToken tokens[kMaxWaiters];
    CompletionPort* ports[kMaxWaiters];
    size_t n;
    {
        std::lock_guard g(waiters_lock_);
        n = waiter_count_;
        std::copy(tokens_, tokens_ + n, tokens);
        std::copy(ports_, ports_ + n, ports);
        waiter_count_ = 0;
    }
    // Posted outside the lock: a port's post() resumes nothing here, it
    // only queues the token for a handler thread.
    for (size_t i = 0; i < n; ++i)
        ports[i]->post(tokens[i], -EAGAIN);
}

size_t PageBudget::waiters() const noexcept
{
    std::lock_guard g(waiters_lock_);
    return waiter_count_;
}

void PageBudget::tighten(size_t budget_pages) noexcept
{
    size_t now = budget_.load(std::memory_order_relaxed);
    while (budget_pages < now && !budget_.compare_exchange_weak(now, budget_pages, std::memory_order_relaxed)) {
    }
    if (over_high() && wake_)
        wake_(context_);
}

void PageBudget::set_overrun(bool on) noexcept
{
    if (!overrun_.exchange(on, std::memory_order_relaxed) && on)
        overruns_.fetch_add(1, std::memory_order_relaxed);
}

} // namespace faultline::memory
