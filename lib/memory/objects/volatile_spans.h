// memory/objects/volatile_spans.h — the volatile ranges of a purgeable
// object, each with its purge class and the moment it was made volatile.
//
// The per-page bytes (volatile_pages.h) say whether a page may be purged;
// the spans say in which order. Each set_volatile call adds one span (a
// later call over part of it carves the older one, as ashmem's unpin does),
// set_nonvolatile and unmap carve them out. The purger sorts the spans of
// every object by (priority, sequence) and purges whole spans. Never used
// on the fault path; the runtime's purge lock guards it.
#pragma once

#include <faultline/purgeable.h>

#include <cstddef>
#include <cstdint>
#include <map>

namespace faultline::memory {

class VolatileSpans {
public:
    struct Span {
        size_t first = 0; // object pages [first, end)
        size_t end = 0;
        uint64_t sequence = 0; // when it was made volatile (larger = later)
        PurgePriority priority = PurgePriority::Normal;
    };

    // Makes [first, end) one span, replacing whatever spans covered parts of it.
    void add(size_t first, size_t end, uint64_t sequence, PurgePriority priority);
    // Removes [first, end) from every span (the parts outside stay).
    void remove(size_t first, size_t end);
    bool empty() const noexcept { return spans_.empty(); }
    size_t count() const noexcept { return spans_.size(); }

    template <typename Fn>
    void for_each(Fn&& fn) const
    {
        for (auto& [first, s] : spans_)
            fn(s);
    }
    // Calls fn(span) for each span overlapping [first, end), clipped to it.
    template <typename Fn>
    void for_each_overlapping(size_t first, size_t end, Fn&& fn) const
    {
        auto it = spans_.upper_bound(first);
        if (it != spans_.begin())
            --it;
        for (; it != spans_.end() && it->second.first < end; ++it) {
            Span s = it->second;
            if (s.end <= first)
                continue;
            s.first = s.first < first ? first : s.first;
            s.end = s.end > end ? end : s.end;
            fn(s);
        }
    }

private:
    std::map<size_t, Span> spans_; // by first page; never overlapping
};

} // namespace faultline::memory
