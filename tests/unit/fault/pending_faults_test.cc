// PendingFaultTable: claiming pages (de-duplication, a full table), tokens
// with generations (stale tokens are ignored), the park/take/repark state
// machine, waiting for parked faults to drain, and the open-addressing index
// under churn against a std::map model. Pure bookkeeping; pages are keys only.
#include "fault/pending_faults.h"

#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <map>
#include <random>
#include <thread>
#include <unistd.h>
#include <vector>

using faultline::fault::PendingFaultTable;
using faultline::memory::PendingToken;
using Status = PendingFaultTable::ClaimStatus;
using Parked = PendingFaultTable::Parked;

namespace {

const uintptr_t kPage = uintptr_t(sysconf(_SC_PAGESIZE));
constexpr uintptr_t kBase = 0x7f0000000000;

uintptr_t page(size_t i) { return kBase + i * kPage; }

PendingToken claimed(PendingFaultTable& t, uintptr_t p)
{
    auto c = t.claim(p);
    EXPECT_EQ(c.status, Status::Claimed) << std::hex << p;
    EXPECT_TRUE(c.token.valid());
    return c.token;
}

Parked parked_for(uintptr_t p, int tid)
{
    Parked x;
    x.region = reinterpret_cast<faultline::memory::Region*>(uintptr_t(0x1000) * tid); // compared, never used
    x.page = p;
    x.kind = faultline::uffd::FaultKind::Minor;
    x.write = true;
    x.tid = tid;
    return x;
}

TEST(PendingFaults, ClaimDuplicateFull)
{
    PendingFaultTable t(2);
    EXPECT_EQ(t.capacity(), 2u);
    PendingToken a = claimed(t, page(0));
    EXPECT_EQ(t.claim(page(0)).status, Status::Duplicate);
    PendingToken b = claimed(t, page(1));
    EXPECT_NE(a.slot, b.slot);
    EXPECT_EQ(t.in_use(), 2u);
    auto full = t.claim(page(2));
    EXPECT_EQ(full.status, Status::Full);
    EXPECT_FALSE(full.token.valid());
    // A page that has a slot is still a duplicate when the table is full.
    EXPECT_EQ(t.claim(page(1)).status, Status::Duplicate);
    EXPECT_EQ(t.in_use(), 2u);
}

TEST(PendingFaults, ReleaseMakesThePageClaimableAgain)
{
    PendingFaultTable t(2);
    PendingToken a = claimed(t, page(0));
    claimed(t, page(1));
    t.release(a);
    EXPECT_EQ(t.in_use(), 1u);
    EXPECT_EQ(t.claim(page(1)).status, Status::Duplicate); // the other page keeps its slot
    PendingToken again = claimed(t, page(0));
    EXPECT_EQ(again.slot, a.slot); // the only free slot
    EXPECT_NE(again.generation, a.generation);
    EXPECT_EQ(t.claim(page(2)).status, Status::Full);
}

// Releasing twice must not free the slot twice (the free list would then
// hand one slot to two faults).
TEST(PendingFaults, DoubleReleaseIsIgnored)
{
    PendingFaultTable t(2);
    PendingToken a = claimed(t, page(0));
    t.release(a);
    t.release(a);
    EXPECT_EQ(t.in_use(), 0u);
    PendingToken x = claimed(t, page(1));
    PendingToken y = claimed(t, page(2));
    EXPECT_NE(x.slot, y.slot);
    EXPECT_EQ(t.claim(page(3)).status, Status::Full);
}

TEST(PendingFaults, InvalidAndOutOfRangeTokensAreIgnored)
{
    PendingFaultTable t(4);
    PendingToken a = claimed(t, page(0));
    t.release(PendingToken {});
    t.release(PendingToken { 4, a.generation });
    t.release(PendingToken { 1000, 1 });
    Parked out;
    EXPECT_FALSE(t.take(PendingToken { 7, 1 }, &out));
    t.park(PendingToken { 9, 1 }, parked_for(page(0), 1));
    EXPECT_EQ(t.parked(), 0u);
    EXPECT_EQ(t.in_use(), 1u);
    EXPECT_EQ(t.claim(page(0)).status, Status::Duplicate);
}

// Capacity 1: every claim reuses slot 0, so an old token differs from the
// current one only by its generation.
TEST(PendingFaults, StaleTokenIsIgnored)
{
    PendingFaultTable t(1);
    PendingToken old = claimed(t, page(0));
    t.release(old);
    PendingToken cur = claimed(t, page(5));
    ASSERT_EQ(cur.slot, old.slot);
    ASSERT_NE(cur.generation, old.generation);

    t.release(old);
    EXPECT_EQ(t.claim(page(5)).status, Status::Duplicate); // still held
    EXPECT_EQ(t.claim(page(0)).status, Status::Full);

    t.park(old, parked_for(page(0), 1));
    EXPECT_EQ(t.parked(), 0u);
    t.park(cur, parked_for(page(5), 2));
    EXPECT_EQ(t.parked(), 1u);
    Parked out;
    EXPECT_FALSE(t.take(old, &out)); // a late completion for the earlier fault
    EXPECT_EQ(t.parked(), 1u);
    ASSERT_TRUE(t.take(cur, &out));
    EXPECT_EQ(out.page, page(5));
    t.repark(old);
    EXPECT_EQ(t.parked(), 0u);
    t.release(cur);
    EXPECT_EQ(t.in_use(), 0u);
}

TEST(PendingFaults, ParkTakeReparkRelease)
{
    PendingFaultTable t(4);
    PendingToken a = claimed(t, page(3));
    const Parked what = parked_for(page(3), 42);
    t.park(a, what);
    EXPECT_EQ(t.parked(), 1u);
    EXPECT_EQ(t.in_use(), 1u);
    EXPECT_EQ(t.claim(page(3)).status, Status::Duplicate); // parked faults keep the page
    t.release(a); // a parked fault is not released before it is taken
    EXPECT_EQ(t.in_use(), 1u);
    EXPECT_EQ(t.parked(), 1u);
    t.park(a, parked_for(page(9), 7)); // already parked: ignored
    EXPECT_EQ(t.parked(), 1u);
    t.repark(a); // not resuming: ignored
    EXPECT_EQ(t.parked(), 1u);

    Parked out;
    ASSERT_TRUE(t.take(a, &out));
    EXPECT_EQ(out.region, what.region);
    EXPECT_EQ(out.page, what.page);
    EXPECT_EQ(out.kind, what.kind);
    EXPECT_EQ(out.write, what.write);
    EXPECT_EQ(out.tid, what.tid);
    EXPECT_EQ(t.parked(), 0u);
    Parked untouched = parked_for(page(1), 1);
    // Exactly once: a second completion while the fault is being resumed is
    // not handed out; it is kept for the repark that follows if the object
    // answers Pending again (it overtook that answer).
    EXPECT_FALSE(t.take(a, &untouched, 77));
    EXPECT_EQ(untouched.tid, 1);
    EXPECT_FALSE(t.park(a, what)); // resuming, not claimed: ignored
    EXPECT_EQ(t.parked(), 0u);
    auto early = t.repark(a);
    ASSERT_TRUE(early);
    EXPECT_EQ(*early, 77);
    EXPECT_EQ(t.parked(), 0u) << "resumed at once instead of parked";

    EXPECT_FALSE(t.repark(a)); // Pending again on resume, nothing overtook it
    EXPECT_EQ(t.parked(), 1u);
    t.repark(a);
    EXPECT_EQ(t.parked(), 1u);
    ASSERT_TRUE(t.take(a, &out));
    EXPECT_EQ(out.tid, 42); // the parked record survives a repark
    EXPECT_EQ(t.claim(page(3)).status, Status::Duplicate);
    t.release(a); // a resumed fault ends
    EXPECT_EQ(t.in_use(), 0u);
    EXPECT_FALSE(t.take(a, &out));
    claimed(t, page(3));
}

TEST(PendingFaults, ACompletionThatOvertakesItsPendingAnswerIsKept)
{
    // The work behind a Pending answer finished on another thread before the
    // answer reached the table: park() hands the result back instead of
    // parking, so the fault is resumed at once and never waits forever.
    PendingFaultTable t(4);
    PendingToken a = claimed(t, page(8));
    Parked out;
    EXPECT_FALSE(t.take(a, &out, -5));
    auto early = t.park(a, parked_for(page(8), 3));
    ASSERT_TRUE(early);
    EXPECT_EQ(*early, -5);
    EXPECT_EQ(t.parked(), 0u);
    // A stale token records nothing.
    PendingToken b = claimed(t, page(9));
    EXPECT_FALSE(t.take(PendingToken { b.slot, b.generation + 1 }, &out, 1));
    EXPECT_FALSE(t.park(b, parked_for(page(9), 4)));
    EXPECT_EQ(t.parked(), 1u);
}

TEST(PendingFaults, WaitReturnsAtOnceWhenNothingIsParked)
{
    PendingFaultTable t(2);
    claimed(t, page(0)); // claimed, not parked
    t.wait_until_none_parked();
}

TEST(PendingFaults, WaitReturnsOnceTheLastParkedFaultIsTaken)
{
    PendingFaultTable t(8);
    std::vector<PendingToken> tokens;
    for (size_t i = 0; i < 3; ++i) {
        tokens.push_back(claimed(t, page(i)));
        t.park(tokens.back(), parked_for(page(i), int(i) + 1));
    }
    ASSERT_EQ(t.parked(), 3u);
    std::atomic<bool> returned { false };
    std::thread waiter([&] {
        t.wait_until_none_parked();
        returned = true;
    });
    Parked out;
    for (size_t i = 0; i < 2; ++i) {
        ASSERT_TRUE(t.take(tokens[i], &out));
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        EXPECT_FALSE(returned) << "returned with " << t.parked() << " still parked";
    }
    ASSERT_TRUE(t.take(tokens[2], &out));
    waiter.join(); // hangs (test timeout) if the last take does not wake it
    EXPECT_TRUE(returned);
    EXPECT_EQ(t.parked(), 0u);
}

// Random claims and releases against a std::map model. Keys are
// consecutive pages (the common case) plus pages whose page numbers differ
// by 2^(20 + log2 index size): those share one home position under the
// table's Fibonacci hash, so they form long probe runs and every release in
// the middle of one exercises the backward-shift deletion.
void churn(size_t capacity, uint64_t seed, int rounds)
{
    SCOPED_TRACE(testing::Message() << "capacity " << capacity << " seed " << seed);
    PendingFaultTable t(capacity);
    const size_t index_size = std::bit_ceil(capacity * 2);
    const uintptr_t colliding_stride = (uintptr_t(1) << (20 + std::countr_zero(index_size))) * kPage;
    std::vector<uintptr_t> keys;
    for (size_t i = 0; i < capacity + capacity / 2 + 2; ++i)
        keys.push_back(page(i));
    for (size_t i = 0; i < 64; ++i)
        keys.push_back(0x1000 * kPage + i * colliding_stride);

    std::map<uintptr_t, PendingToken> model;
    std::vector<PendingToken> stale; // tokens released earlier
    std::mt19937_64 rng(seed);
    size_t seen[3] = {};
    for (int round = 0; round < rounds; ++round) {
        const uintptr_t key = keys[rng() % keys.size()];
        auto it = model.find(key);
        if (rng() % 3 != 0) { // claims outnumber releases, so the table fills
            auto c = t.claim(key);
            Status want = it != model.end() ? Status::Duplicate
                : model.size() == capacity  ? Status::Full
                                            : Status::Claimed;
            ASSERT_EQ(int(c.status), int(want)) << "round " << round << " key " << std::hex << key;
            ++seen[int(c.status)];
            if (c.status == Status::Claimed) {
                ASSERT_LT(c.token.slot, capacity);
                model[key] = c.token;
            }
        } else if (it != model.end()) {
            t.release(it->second);
            stale.push_back(it->second);
            model.erase(it);
        } else if (!stale.empty()) {
            t.release(stale[rng() % stale.size()]); // must change nothing
        }
        if (round % 97 == 0) {
            ASSERT_EQ(t.in_use(), model.size()) << "round " << round;
        }
    }
    // The run went through every answer, the full table included.
    EXPECT_GT(seen[int(Status::Claimed)], 0u);
    EXPECT_GT(seen[int(Status::Duplicate)], 0u);
    EXPECT_GT(seen[int(Status::Full)], 0u);
    // Every held key is found, every other key is not (claim, then release).
    ASSERT_EQ(t.in_use(), model.size());
    for (uintptr_t key : keys) {
        auto c = t.claim(key);
        if (model.count(key)) {
            EXPECT_EQ(int(c.status), int(Status::Duplicate)) << std::hex << key;
        } else if (model.size() < capacity) {
            ASSERT_EQ(int(c.status), int(Status::Claimed)) << std::hex << key;
            t.release(c.token);
        }
    }
    for (auto& [key, token] : model)
        t.release(token);
    EXPECT_EQ(t.in_use(), 0u);
}

TEST(PendingFaults, ChurnCapacity1) { churn(1, 1, 20000); }
TEST(PendingFaults, ChurnCapacity7) { churn(7, 2, 50000); }
TEST(PendingFaults, ChurnCapacity4096) { churn(4096, 3, 400000); }

} // namespace
