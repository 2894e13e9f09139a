// fault/wake_set.h — the ranges whose waiting threads a batch releases.
//
// A batch wakes exactly the pages it served: each fault adds the range that
// is now present around its page, and flush() merges overlapping and
// adjacent ranges into runs and issues one UFFDIO_WAKE per run. (A single
// span from the lowest to the highest page of a batch would also wake
// threads waiting on unrelated pages in between, which then fault again.)
// Fixed capacity on the handler thread's stack: when it fills, it flushes
// early, which is always safe because a range is only added once its
// pending slot was released (fault/pending_faults.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline::fault {

class Waker {
public:
    // 0 or -errno (UFFDIO_WAKE).
    virtual long wake(uintptr_t start, size_t len) noexcept = 0;

protected:
    ~Waker() = default;
};

class WakeSet {
public:
    static constexpr size_t kCapacity = 128;

    explicit WakeSet(size_t page_size) noexcept
        : page_size_(page_size)
    {
    }

    void add(uintptr_t start, size_t len, Waker& waker) noexcept;
    // Wakes every run; returns the number of UFFDIO_WAKE calls made. A run
    // whose wake fails is woken page by page, so nobody is left waiting.
    size_t flush(Waker& waker) noexcept;
    size_t size() const noexcept { return count_; }

private:
    struct Run {
        uintptr_t start;
        uintptr_t end;
    };
    Run runs_[kCapacity];
    size_t count_ = 0;
    size_t page_size_;
};

} // namespace faultline::fault
