// tools/stress/mutator.cc — the mutator loop and the table of operations
// (see mutator.h; the operations are in mutator/).
#include "mutator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <pthread.h>

namespace stress {

namespace {

std::vector<Operation>& registry()
{
    static std::vector<Operation> operations; // filled before main() runs
    return operations;
}

// The operations with a weight for one state of a slot.
struct Column {
    std::vector<std::pair<unsigned, OperationFn>> entries; // (weight, operation)
    unsigned total = 0;

    void add(unsigned weight, OperationFn fn)
    {
        if (!weight)
            return;
        entries.emplace_back(weight, fn);
        total += weight;
    }

    void run(Mutator& m, Rng& rng, unsigned si, Slot& s) const
    {
        unsigned r = rng.below(total);
        for (const auto& [weight, fn] : entries) {
            if (r < weight)
                return fn(m, si, s);
            r -= weight;
        }
    }
};

struct Table {
    Column empty, hot, cold;
};

const Table& table()
{
    static const Table t = [] {
        // Sorted by name, so that the draw does not depend on the order in
        // which the linker runs the files' initialisers: a seed then picks
        // the same operations in every build.
        std::vector<Operation> ops = registry();
        std::sort(ops.begin(), ops.end(), [](const Operation& a, const Operation& b) { return std::strcmp(a.name, b.name) < 0; });
        Table t;
        for (const Operation& op : ops) {
            t.empty.add(op.weights.empty, op.run);
            t.hot.add(op.weights.hot, op.run);
            t.cold.add(op.weights.cold, op.run);
        }
        if (!t.empty.total || !t.hot.total || !t.cold.total) {
            std::fprintf(stderr, "stress: no operation for some state of a slot (empty %u, hot %u, cold %u)\n", t.empty.total,
                t.hot.total, t.cold.total);
            std::exit(2);
        }
        return t;
    }();
    return t;
}

} // namespace

RegisterOperation::RegisterOperation(const Operation& op)
{
    for (const Operation& other : registry()) {
        if (std::strcmp(other.name, op.name) == 0) {
            std::fprintf(stderr, "stress: operation '%s' registered twice\n", op.name);
            std::abort();
        }
    }
    registry().push_back(op);
}

Mutator::Mutator(World& w, unsigned index, uint64_t seed, Activity& activity)
    : w_(w)
    , index_(index)
    , rng_(seed)
    , act_(activity)
    , buf_(w.words)
{
    std::snprintf(who_, sizeof who_, "mutator %u", index);
    (void)table(); // built by the first mutator, on the main thread
}

void Mutator::run()
{
    char name[16];
    std::snprintf(name, sizeof name, "stress-mut%u", index_);
    pthread_setname_np(pthread_self(), name);
    prepare_thread_for_faults();
    while (!w_.stop.load(std::memory_order_relaxed)) {
        const bool hot = rng_.percent(30);
        const unsigned si = hot ? rng_.below(kHotSlots) : rng_.below(w_.opt.slots);
        Slot& s = w_.slots[si];
        if (s.busy.exchange(true, std::memory_order_acquire))
            continue;
        operate(si, s);
        s.busy.store(false, std::memory_order_release);
        // Queries read /proc/self/pagemap under the runtime's API lock and
        // cost as much as dozens of other operations; a few suffice to
        // race them with everything else.
        if (rng_.below(1000) < 3)
            run_query(*this);
    }
}

void Mutator::operate(unsigned si, Slot& s)
{
    const Table& t = table();
    if (!s.live.load(std::memory_order_relaxed))
        t.empty.run(*this, rng_, si, s);
    else if (si < kHotSlots)
        t.hot.run(*this, rng_, si, s);
    else
        t.cold.run(*this, rng_, si, s);
}

void Mutator::unmap_everything()
{
    for (unsigned si = 0; si < w_.opt.slots; ++si) {
        Slot& s = w_.slots[si];
        if (s.live.load())
            unmap_slot(*this, si, s, true);
    }
}

bool Mutator::reserve_pin()
{
    unsigned now = w_.pinned.load();
    do {
        if (now >= w_.pinned_cap)
            return false;
    } while (!w_.pinned.compare_exchange_weak(now, now + 1));
    return true;
}

void Mutator::probe(const char* what, unsigned si, uintptr_t a, bool write, bool should_fault)
{
    act_.begin(what, a);
    bool ok = write ? guarded_probe_write(reinterpret_cast<uint64_t*>(a)) : guarded_probe_read(reinterpret_cast<const uint64_t*>(a));
    act_.end();
    if (ok == should_fault)
        failure("%s: %s: %s %#lx (slot %u) %s", who_, what, write ? "writing" : "reading", (unsigned long)a, si,
            should_fault ? "did not fault" : "raised SIGSEGV");
}

} // namespace stress
