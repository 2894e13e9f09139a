#include "memory/objects/volatile_spans.h"

namespace faultline::memory {

void VolatileSpans::remove(size_t first, size_t end)
{
    if (first >= end)
        return;
    auto it = spans_.upper_bound(first);
    if (it != spans_.begin())
        --it;
    while (it != spans_.end() && it->second.first < end) {
        Span s = it->second;
        if (s.end <= first) {
            ++it;
            continue;
        }
        it = spans_.erase(it);
        // Keep what lies outside [first, end) on either side.
        if (s.first < first)
            spans_.emplace(s.first, Span { s.first, first, s.sequence, s.priority });
        if (s.end > end)
            it = spans_.emplace(end, Span { end, s.end, s.sequence, s.priority }).first;
    }
}

void VolatileSpans::add(size_t first, size_t end, uint64_t sequence, PurgePriority priority)
{
    if (first >= end)
        return;
    remove(first, end);
    spans_.emplace(first, Span { first, end, sequence, priority });
}

} // namespace faultline::memory
