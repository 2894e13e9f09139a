// tools/stress/mutator.cc — the mutator loop and the table of operations
// (see mutator.h; the operations are in mutator/).
#include "mutator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
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
    Column empty, hot, cold, hot_file, cold_file, cow, snapshot;
};

// Built once, by the first mutator (on the main thread); `skip` names
// operations left out (Options::skip), each of which must exist.
const Table& table(const std::vector<std::string>& skip = {})
{
    static const Table t = [&] {
        // Sorted by name, so that the draw does not depend on the order in
        // which the linker runs the files' initialisers: a seed then picks
        // the same operations in every build.
        std::vector<Operation> ops = registry();
        std::sort(ops.begin(), ops.end(), [](const Operation& a, const Operation& b) { return std::strcmp(a.name, b.name) < 0; });
        for (const std::string& name : skip) {
            if (std::none_of(ops.begin(), ops.end(), [&](const Operation& op) { return name == op.name; })) {
                std::fprintf(stderr, "stress: --skip: no operation '%s'\n", name.c_str());
                std::exit(2);
            }
        }
        std::erase_if(ops, [&](const Operation& op) { return std::find(skip.begin(), skip.end(), op.name) != skip.end(); });
        Table t;
        for (const Operation& op : ops) {
            t.empty.add(op.weights.empty, op.run);
            t.hot.add(op.weights.hot, op.run);
            t.cold.add(op.weights.cold, op.run);
            t.hot_file.add(op.weights.hot_file, op.run);
            t.cold_file.add(op.weights.cold_file, op.run);
            t.cow.add(op.weights.cow, op.run);
            t.snapshot.add(op.weights.snapshot, op.run);
        }
        if (!t.empty.total || !t.hot.total || !t.cold.total || !t.hot_file.total || !t.cold_file.total || !t.cow.total
            || !t.snapshot.total) {
            std::fprintf(stderr,
                "stress: no operation for some state of a slot (empty %u, hot %u, cold %u, hot file %u, cold file %u, cow %u, "
                "snapshot %u)\n",
                t.empty.total, t.hot.total, t.cold.total, t.hot_file.total, t.cold_file.total, t.cow.total, t.snapshot.total);
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
    (void)table(w.opt.skip); // built by the first mutator, on the main thread
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
    const bool file = is_file(kind(s));
    if (!s.live.load(std::memory_order_relaxed))
        t.empty.run(*this, rng_, si, s);
    else if (kind(s) == Kind::Cow)
        t.cow.run(*this, rng_, si, s);
    else if (kind(s) == Kind::Snapshot)
        t.snapshot.run(*this, rng_, si, s);
    else if (si < kHotSlots)
        (file ? t.hot_file : t.hot).run(*this, rng_, si, s);
    else
        (file ? t.cold_file : t.cold).run(*this, rng_, si, s);
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

void Mutator::claim(unsigned si, uintptr_t a, unsigned n, size_t guard, const char* what)
{
    const size_t size = size_t(n) * w_.page;
    if (a % w_.page || a - guard < w_.arena_lo || a + size > w_.arena_hi)
        failure("%s: %s for slot %u returned %#lx+%u pages: misplaced (arena %#lx-%#lx)", who_, what, si, (unsigned long)a, n,
            (unsigned long)w_.arena_lo, (unsigned long)w_.arena_hi);
    for (uintptr_t q = a - guard; q < a + size; q += w_.page) {
        auto it = w_.owners.find(q);
        if (it != w_.owners.end())
            failure("%s: %s for slot %u returned %#lx+%u pages, but page %#lx already belongs to slot %u%s", who_, what, si,
                (unsigned long)a, n, (unsigned long)q, it->second.slot, it->second.guard ? " (a guard page)" : "");
        w_.owners[q] = Owner { si, q < a };
    }
}

uint32_t Mutator::publish(Slot& s, unsigned si, const Mapping& m)
{
    // The stores that describe the new incarnation come before `live`: an
    // accessor that sees the slot live then sees all of them.
    const uint32_t inc = s.incarnation.load(std::memory_order_relaxed) + 1;
    s.base.store(m.base, std::memory_order_relaxed);
    s.npages.store(m.npages, std::memory_order_relaxed);
    s.incarnation.store(inc, std::memory_order_relaxed);
    s.kind.store(m.kind, std::memory_order_relaxed);
    s.first.store(m.first, std::memory_order_relaxed);
    for (unsigned p = 0; p < kMaxPages; ++p) {
        PageView v;
        if (p < m.npages) {
            v.mapped = true;
            v.access = m.access;
            v.immutable = m.immutable;
            // A shared file page keeps its identity across incarnations:
            // what was written to it is still there (see model.h).
            v.zero_id = m.kind == Kind::SharedFile ? w_.file_zero_id(si, m.first + p) : w_.new_zero_id();
        }
        set_view(s, p, v);
        s.been_writable[p] = writable(m.access);
        s.been_executable[p] = has(m.access, Access::Execute);
        s.name[p] = uint8_t(m.name);
    }
    s.pinned = m.immutable;
    s.committed = m.committed;
    s.guard = m.stack;
    s.stack = m.stack;
    s.purgeable = m.purgeable;
    s.max_access = m.max_access == Access::None ? m.access : m.max_access;
    s.last_base = m.base;
    // A new region: copy-on-write operations set what else they need after
    // publishing (mutator/cow_view.cc).
    s.region_id = w_.next_region_id.fetch_add(1);
    s.frozen = false;
    s.clone_depth = 0;
    s.snapshot_of = 0;
    s.snapshot_of_id = 0;
    s.snapshots.clear();
    s.live.store(true, std::memory_order_relaxed);
    return inc;
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
