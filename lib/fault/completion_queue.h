// fault/completion_queue.h — completions posted by workers, for the handler
// threads to finish.
//
// An object that answered Pending posts (token, result) here once its page
// can be installed, from whatever thread did the work. The queue wakes the
// handler threads through an eventfd they poll beside the userfaultfd; one
// of them drains the queue and resumes each fault. Capacity equals the
// pending table's, and a token is posted once per Pending answer, so a post
// never finds the queue full; a post that does (a misbehaving object) is
// dropped and counted, and the fault stays parked rather than corrupting
// anything.
#pragma once

#include "memory/fault_context.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace faultline::fault {

class CompletionQueue final : public memory::CompletionPort {
public:
    struct Completion {
        memory::PendingToken token;
        int64_t result = 0;
    };

    // The eventfd is created here; check ready().
    explicit CompletionQueue(size_t capacity);
    ~CompletionQueue();
    CompletionQueue(const CompletionQueue&) = delete;
    CompletionQueue& operator=(const CompletionQueue&) = delete;

    bool ready() const noexcept { return event_fd_ >= 0; }
    // Readable when completions are queued.
    int event_fd() const noexcept { return event_fd_; }

    void post(memory::PendingToken token, int64_t result) noexcept override;
    // Moves up to `max` completions into `out`; returns how many.
    size_t drain(Completion* out, size_t max) noexcept;
    uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

private:
    size_t capacity_;
    std::unique_ptr<Completion[]> ring_;
    size_t head_ = 0;
    size_t count_ = 0;
    std::mutex lock_;
    int event_fd_ = -1;
    std::atomic<uint64_t> dropped_ { 0 };
};

} // namespace faultline::fault
