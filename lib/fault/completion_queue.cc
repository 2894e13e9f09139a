#include "fault/completion_queue.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace faultline::fault {

CompletionQueue::CompletionQueue(size_t capacity)
    : capacity_(capacity)
    , ring_(new Completion[capacity])
{
    event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

CompletionQueue::~CompletionQueue()
{
    if (event_fd_ >= 0)
        close(event_fd_);
}

void CompletionQueue::post(memory::PendingToken token, int64_t result) noexcept
{
    {
        std::lock_guard guard(lock_);
        if (count_ == capacity_) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        ring_[(head_ + count_) % capacity_] = { token, result };
        ++count_;
    }
    uint64_t one = 1;
    (void)!write(event_fd_, &one, sizeof one);
}

size_t CompletionQueue::drain(Completion* out, size_t max) noexcept
{
    // Reset the eventfd first: a post that lands after this read writes it
    // again, so the handler polls it readable and comes back.
    uint64_t value;
    (void)!read(event_fd_, &value, sizeof value);
    std::lock_guard guard(lock_);
    size_t n = count_ < max ? count_ : max;
    for (size_t i = 0; i < n; ++i)
        out[i] = ring_[(head_ + i) % capacity_];
    head_ = (head_ + n) % capacity_;
    count_ -= n;
    if (count_ > 0) {
        // More than `max` were queued: keep the eventfd readable.
        uint64_t one = 1;
        (void)!write(event_fd_, &one, sizeof one);
    }
    return n;
}

} // namespace faultline::fault
