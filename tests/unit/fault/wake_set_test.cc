// WakeSet: merging a batch's served ranges into runs, one wake per run in
// address order, early flushes when the fixed set fills, and the page-by-page
// fallback when a wake fails. A fake Waker records the calls.
#include "fault/wake_set.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <map>
#include <random>
#include <utility>
#include <vector>

using faultline::fault::WakeSet;
using faultline::fault::Waker;

namespace {

constexpr size_t P = 4096;
constexpr uintptr_t kBase = 0x40000000;

uintptr_t pg(size_t i) { return kBase + i * P; }

using Call = std::pair<uintptr_t, size_t>; // (start, len)

class FakeWaker final : public Waker {
public:
    long wake(uintptr_t start, size_t len) noexcept override
    {
        calls.emplace_back(start, len);
        return result ? result(start, len) : 0;
    }
    std::vector<Call> calls;
    std::function<long(uintptr_t, size_t)> result; // 0 when unset
};

TEST(WakeSet, EmptyFlushWakesNothing)
{
    FakeWaker w;
    WakeSet set(P);
    EXPECT_EQ(set.flush(w), 0u);
    EXPECT_TRUE(w.calls.empty());
}

TEST(WakeSet, AdjacentRangesCoalesce)
{
    FakeWaker w;
    WakeSet set(P);
    set.add(pg(1), 2 * P, w);
    set.add(pg(3), 2 * P, w); // starts where the first ends
    set.add(pg(0), P, w);     // ends where the first starts
    EXPECT_EQ(set.size(), 1u);
    EXPECT_EQ(set.flush(w), 1u);
    EXPECT_EQ(w.calls, (std::vector<Call> { { pg(0), 5 * P } }));
    EXPECT_EQ(set.size(), 0u);
}

TEST(WakeSet, OverlappingAndContainedRangesCoalesce)
{
    FakeWaker w;
    WakeSet set(P);
    set.add(pg(10), 4 * P, w);
    set.add(pg(12), 4 * P, w); // overlaps the end
    set.add(pg(11), P, w);     // inside
    set.add(pg(8), 3 * P, w);  // overlaps the start
    set.add(pg(10), 4 * P, w); // again
    EXPECT_EQ(set.flush(w), 1u);
    EXPECT_EQ(w.calls, (std::vector<Call> { { pg(8), 8 * P } }));
}

TEST(WakeSet, DisjointRangesWakeOnceEachInAddressOrder)
{
    FakeWaker w;
    WakeSet set(P);
    set.add(pg(20), P, w);
    set.add(pg(2), 2 * P, w);
    set.add(pg(9), P, w);
    set.add(pg(5), P, w); // one page of gap on both sides of 5
    EXPECT_EQ(set.size(), 4u);
    EXPECT_EQ(set.flush(w), 4u);
    EXPECT_EQ(w.calls, (std::vector<Call> { { pg(2), 2 * P }, { pg(5), P }, { pg(9), P }, { pg(20), P } }));
    // The set is empty again: a second flush wakes nothing more.
    EXPECT_EQ(set.flush(w), 0u);
    EXPECT_EQ(w.calls.size(), 4u);
}

// Runs that only touch through a range added later are joined at flush.
TEST(WakeSet, BridgingRangeJoinsRunsAddedOutOfOrder)
{
    FakeWaker w;
    WakeSet set(P);
    set.add(pg(6), P, w);
    set.add(pg(0), 2 * P, w);
    set.add(pg(4), P, w);
    set.add(pg(2), 2 * P, w); // 0..4 now touches 4..5, which does not touch 6
    EXPECT_EQ(set.flush(w), 2u);
    EXPECT_EQ(w.calls, (std::vector<Call> { { pg(0), 5 * P }, { pg(6), P } }));
    set.add(pg(5), P, w); // the same with the gap filled: one run
    set.add(pg(6), P, w);
    set.add(pg(0), 5 * P, w);
    w.calls.clear();
    EXPECT_EQ(set.flush(w), 1u);
    EXPECT_EQ(w.calls, (std::vector<Call> { { pg(0), 7 * P } }));
}

// A run that grew over another one already in the set: flush must keep the
// larger end, not take the contained run's.
TEST(WakeSet, RunGrownOverAnotherKeepsItsEnd)
{
    FakeWaker w;
    WakeSet set(P);
    set.add(pg(0), P, w);
    set.add(pg(3), P, w);
    set.add(pg(1), 8 * P, w); // extends the first run to 0..9, over 3..4
    EXPECT_EQ(set.flush(w), 1u);
    EXPECT_EQ(w.calls, (std::vector<Call> { { pg(0), 9 * P } }));
}

// Page-level model of which pages were woken and how often.
std::map<uintptr_t, int> woken_pages(const std::vector<Call>& calls)
{
    std::map<uintptr_t, int> n;
    for (auto [start, len] : calls)
        for (uintptr_t p = start; p < start + len; p += P)
            ++n[p];
    return n;
}

TEST(WakeSet, FullSetFlushesEarlyAndLosesNothing)
{
    FakeWaker w;
    WakeSet set(P);
    const size_t ranges = 3 * WakeSet::kCapacity + 17;
    // Disjoint one- or two-page ranges with gaps between them, in random order.
    std::vector<size_t> order(ranges);
    for (size_t i = 0; i < ranges; ++i)
        order[i] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937(5));
    std::map<uintptr_t, int> added;
    for (size_t n = 0; n < ranges; ++n) {
        const size_t i = order[n];
        const size_t len = 1 + i % 2;
        set.add(pg(3 * i), len * P, w);
        for (size_t k = 0; k < len; ++k)
            added[pg(3 * i + k)] = 1;
        // Nothing is woken until the set is full; then exactly the full set.
        if (n < WakeSet::kCapacity) {
            ASSERT_TRUE(w.calls.empty()) << n;
        }
        if (n == WakeSet::kCapacity) {
            ASSERT_EQ(w.calls.size(), WakeSet::kCapacity);
            ASSERT_EQ(set.size(), 1u);
        }
    }
    set.flush(w);
    EXPECT_EQ(w.calls.size(), ranges);
    // Every added page exactly once, and no page that was never added.
    EXPECT_EQ(woken_pages(w.calls), added);
}

// A full set does not flush when the new range extends an existing run.
TEST(WakeSet, FullSetExtendsARunWithoutFlushing)
{
    FakeWaker w;
    WakeSet set(P);
    for (size_t i = 0; i < WakeSet::kCapacity; ++i)
        set.add(pg(2 * i), P, w);
    ASSERT_EQ(set.size(), WakeSet::kCapacity);
    set.add(pg(1), P, w); // touches the runs at 0 and 2
    EXPECT_TRUE(w.calls.empty());
    EXPECT_EQ(set.size(), WakeSet::kCapacity);
    EXPECT_EQ(set.flush(w), WakeSet::kCapacity - 1); // 0..3 became one run
    EXPECT_EQ(w.calls.front(), Call(pg(0), 3 * P));
}

// A run whose wake fails (other than "process gone") is woken page by
// page, so no thread waiting in it is left behind.
TEST(WakeSet, FailedWakeFallsBackToPages)
{
    FakeWaker w;
    w.result = [](uintptr_t start, size_t len) -> long { return start == pg(10) && len > P ? -EINVAL : 0; };
    WakeSet set(P);
    set.add(pg(10), 3 * P, w);
    set.add(pg(20), 2 * P, w);
    EXPECT_EQ(set.flush(w), 1u + 3u + 1u);
    EXPECT_EQ(w.calls, (std::vector<Call> { { pg(10), 3 * P }, { pg(10), P }, { pg(11), P }, { pg(12), P },
                           { pg(20), 2 * P } }));
}

TEST(WakeSet, EveryPageWakeIsTriedEvenIfTheyFail)
{
    FakeWaker w;
    w.result = [](uintptr_t, size_t) -> long { return -EFAULT; };
    WakeSet set(P);
    set.add(pg(0), 2 * P, w);
    EXPECT_EQ(set.flush(w), 3u);
    EXPECT_EQ(w.calls, (std::vector<Call> { { pg(0), 2 * P }, { pg(0), P }, { pg(1), P } }));
}

// ESRCH: the process is gone, nobody waits, nothing to retry.
TEST(WakeSet, SearchFailureDoesNotFallBack)
{
    FakeWaker w;
    w.result = [](uintptr_t, size_t) -> long { return -ESRCH; };
    WakeSet set(P);
    set.add(pg(0), 4 * P, w);
    set.add(pg(8), P, w);
    EXPECT_EQ(set.flush(w), 2u);
    EXPECT_EQ(w.calls, (std::vector<Call> { { pg(0), 4 * P }, { pg(8), P } }));
}

} // namespace
