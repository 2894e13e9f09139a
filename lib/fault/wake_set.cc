#include "fault/wake_set.h"

#include <cerrno>

namespace faultline::fault {

void WakeSet::add(uintptr_t start, size_t len, Waker& waker) noexcept
{
    const uintptr_t end = start + len;
    // Most batches are a few faults, often neighbours: extend the run that
    // touches this range if there is one, else append.
    for (size_t i = 0; i < count_; ++i) {
        if (start <= runs_[i].end && end >= runs_[i].start) {
            if (start < runs_[i].start)
                runs_[i].start = start;
            if (end > runs_[i].end)
                runs_[i].end = end;
            return;
        }
    }
    if (count_ == kCapacity)
        flush(waker);
    runs_[count_++] = { start, end };
}

size_t WakeSet::flush(Waker& waker) noexcept
{
    // Insertion sort by start (the set is small), then merge touching runs.
    for (size_t i = 1; i < count_; ++i) {
        Run r = runs_[i];
        size_t j = i;
        for (; j > 0 && runs_[j - 1].start > r.start; --j)
            runs_[j] = runs_[j - 1];
        runs_[j] = r;
    }
    size_t merged = 0;
    for (size_t i = 0; i < count_; ++i) {
        if (merged > 0 && runs_[i].start <= runs_[merged - 1].end) {
            if (runs_[i].end > runs_[merged - 1].end)
                runs_[merged - 1].end = runs_[i].end;
        } else {
            runs_[merged++] = runs_[i];
        }
    }
    size_t calls = 0;
    for (size_t i = 0; i < merged; ++i) {
        ++calls;
        long rc = waker.wake(runs_[i].start, runs_[i].end - runs_[i].start);
        if (rc < 0 && rc != -ESRCH) {
            for (uintptr_t p = runs_[i].start; p < runs_[i].end; p += page_size_) {
                waker.wake(p, page_size_);
                ++calls;
            }
        }
    }
    count_ = 0;
    return calls;
}

} // namespace faultline::fault
