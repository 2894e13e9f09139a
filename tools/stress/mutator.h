// tools/stress/mutator.h — the mutator threads, and the steps their
// operations share.
//
// A mutator thread picks a slot, takes it (its `busy` flag) and runs one
// operation on it, drawn from a table of operations. Each operation lives in
// its own file, tools/stress/mutator/<operation>.cc, and adds itself to the
// table with a RegisterOperation, so a new kind of region or call is one more
// file, not another case in a switch.
//
// Every operation on a mapping takes the same four steps, and Mutator
// provides them so that the operations do not repeat them:
//
//   pick    a range of the slot's mapped pages (pick_any; runs and
//           pick_range for other choices);
//   check   what the model predicts the call returns: 0, or the errno of a
//           refusal (each operation's own rule, from view and any_immutable);
//   change  the call, made by change(): with the slot's sequence odd while it
//           may alter what accessors see, and its result compared with the
//           prediction (a predicted refusal goes to refuse() instead);
//   verify  on success, change() runs the operation's callback, which
//           updates the model and checks the effect (probes, read-backs)
//           before the sequence goes even again.
//
// Operations with no range to work on yet (map, map_file, map_conflict), those that
// only check refusals (hole_is_enoent, bad_arguments) and the read-only ones
// (region_stats, the queries) use the pieces change() is made of: pick_any,
// call, expect and refuse.
#pragma once

#include "model.h"
#include "signals.h"
#include "util.h"
#include "watchdog.h"

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace stress {

struct PageRange {
    unsigned a = 0, b = 0; // [a, b) in pages of the slot
    unsigned size() const { return b - a; }
};

// How the change step runs. Labels are string literals: the watchdog may
// print them while the call is in progress.
struct Change {
    const char* call;                   // the call, as the watchdog and failure messages name it
    const char* refused_call = nullptr; // the watchdog's name for it when refused (default: call)
    const char* refused_what = nullptr; // the failure messages' name for it when refused (default: call)
    // The call may change what accessors see, so it runs with the slot's
    // sequence odd. Off for calls that leave accessors' view as it is.
    bool odd = true;
    // When to wait until no accessor can still act on the slot's old state:
    // before the call (so the result can be read back undisturbed) or after
    // it (before the model lets the pages go).
    enum class Grace { None, Before, After } grace = Grace::None;
};

class Mutator {
public:
    Mutator(World& w, unsigned index, uint64_t seed, Activity& activity);

    // The thread body: runs operations until w.stop is set.
    void run();

    // Used by the main thread between phases.
    void unmap_everything();

    // -- for the operations (the mutator holds the slot's `busy` flag) --------

    World& world() { return w_; }
    Rng& rng() { return rng_; }
    Activity& activity() { return act_; }
    const char* who() const { return who_; }
    std::vector<uint64_t>& page_buffer() { return buf_; } // one page's words, for read-backs

    PageView view(const Slot& s, unsigned p) const { return unpack(s.pages[p].load(std::memory_order_relaxed)); }
    void set_view(Slot& s, unsigned p, const PageView& v) { s.pages[p].store(pack(v), std::memory_order_relaxed); }
    uintptr_t address(const Slot& s, unsigned p) const { return s.base.load(std::memory_order_relaxed) + size_t(p) * w_.page; }
    void* pointer(const Slot& s, unsigned p) const { return reinterpret_cast<void*>(address(s, p)); }
    unsigned npages(const Slot& s) const { return s.npages.load(std::memory_order_relaxed); }
    Kind kind(const Slot& s) const { return s.kind.load(std::memory_order_relaxed); }
    unsigned first(const Slot& s) const { return s.first.load(std::memory_order_relaxed); }

    // The key verify_page needs for slot page p (file pages: untouched
    // words from the shadow).
    PageKey page_key(unsigned si, const Slot& s, unsigned p) const
    {
        const Kind k = kind(s);
        const unsigned vpage = value_page(k, first(s), p);
        return { si, s.incarnation.load(std::memory_order_relaxed), p, vpage, is_file(k), w_.untouched_page(si, k, first(s), p) };
    }
    size_t record(unsigned si, const Slot& s, unsigned p) const { return record_index(si, kind(s), first(s), p); }

    // Waits until no accessor can still be acting on a view older than now.
    void grace_period() { stress::grace_period(w_, act_); }

    // Maximal runs of mapped pages that satisfy `pred`.
    template <typename Pred>
    std::vector<PageRange> runs(const Slot& s, Pred&& pred) const
    {
        std::vector<PageRange> out;
        const unsigned n = npages(s);
        for (unsigned p = 0; p < n;) {
            PageView v = view(s, p);
            if (!v.mapped || !pred(p, v)) {
                ++p;
                continue;
            }
            unsigned q = p + 1;
            while (q < n && view(s, q).mapped && pred(q, view(s, q)))
                ++q;
            out.push_back({ p, q });
            p = q;
        }
        return out;
    }

    // A random sub-range (of at most `max_len` pages) of a random run.
    bool pick_range(const std::vector<PageRange>& rs, unsigned max_len, PageRange* out)
    {
        if (rs.empty())
            return false;
        const PageRange& run = rs[rng_.below(unsigned(rs.size()))];
        unsigned len = 1 + rng_.below(std::min(run.size(), max_len));
        unsigned start = run.a + rng_.below(run.size() - len + 1);
        *out = { start, start + len };
        return true;
    }

    // The same over all mapped pages, immutable ones included (which the
    // check step must then predict a refusal for).
    bool pick_any(const Slot& s, unsigned max_len, PageRange* out)
    {
        return pick_range(runs(s, [](unsigned, const PageView&) { return true; }), max_len, out);
    }

    bool any_immutable(const Slot& s, PageRange r) const
    {
        for (unsigned p = r.a; p < r.b; ++p)
            if (view(s, p).immutable)
                return true;
        return false;
    }

    // Inside the arena and owned by no slot (the caller holds reuse_lock).
    bool page_free(uintptr_t a) const
    {
        return a >= w_.arena_lo && a < w_.arena_hi && w_.owners.find(a) == w_.owners.end();
    }

    // Takes one of the few slots allowed to hold immutable pages.
    bool reserve_pin();

    // After a map returned `a` for slot si (n pages, `guard` bytes of stack
    // guard below): checks that the range is page-aligned, inside the arena
    // and owned by no slot, and records it as si's (the caller holds
    // reuse_lock). `what` names the call.
    void claim(unsigned si, uintptr_t a, unsigned n, size_t guard, const char* what);

    // What a new mapping publishes (map, map_file), with the slot's sequence
    // odd: a new incarnation of n pages at `a`.
    struct Mapping {
        uintptr_t base = 0;
        unsigned npages = 0;
        Kind kind = Kind::Anonymous;
        unsigned first = 0; // file regions: the file page of its first page
        Access access = Access::None;
        Access max_access = Access::None;
        unsigned name = 0;
        bool immutable = false;
        bool committed = true;
        bool stack = false;
        bool purgeable = false;
    };
    // Returns the new incarnation.
    uint32_t publish(Slot& s, unsigned si, const Mapping& m);

    // Expects the access at `a` to raise SIGSEGV (or not).
    void probe(const char* what, unsigned si, uintptr_t a, bool write, bool should_fault);

    // Makes an API call under the watchdog and counts it as an operation.
    template <typename F>
    auto call(const char* what, uintptr_t a, F&& f)
    {
        act_.begin(what, a);
        auto r = f();
        act_.end();
        w_.ops.fetch_add(1, std::memory_order_relaxed);
        return r;
    }

    // Compares a result with the expected errno (0 = success).
    template <typename T>
    bool expect(const Result<T>& r, int expected, const char* what, unsigned si, uintptr_t a, size_t len)
    {
        const int got = r ? 0 : r.error().code();
        if (got == expected)
            return true;
        failure("%s: %s(%#lx, %zu pages) on slot %u: expected %s, got %s%s%s", who_, what, (unsigned long)a, len / w_.page, si,
            errno_name(expected), errno_name(got), r ? "" : ": ", r ? "" : r.error().message());
        return false;
    }

    // A call the model predicts to be refused with `expected`. Refused calls
    // must change nothing; accessors keep checking the slot meanwhile, so the
    // sequence stays even.
    template <typename F>
    void refuse(unsigned si, uintptr_t a, size_t len, int expected, const char* call_label, const char* what, F&& f)
    {
        auto res = call(call_label, a, std::forward<F>(f));
        expect(res, expected, what, si, a, len);
    }

    // The change and verify steps for ranges of slot `si` that the pick and
    // check steps chose: `api(pointer, length)` makes the call for one range,
    // `verify(range)` runs for each range whose call succeeded. With an
    // `expected` errno the calls are refusals instead (see refuse) and nothing
    // else happens. Returns the number of ranges changed.
    template <typename Api, typename Verify>
    unsigned change(unsigned si, Slot& s, std::span<const PageRange> ranges, int expected, const Change& c, Api&& api, Verify&& verify)
    {
        if (expected) {
            for (const PageRange& r : ranges)
                refuse(si, address(s, r.a), r.size() * w_.page, expected, c.refused_call ? c.refused_call : c.call,
                    c.refused_what ? c.refused_what : c.call, [&] { return api(pointer(s, r.a), r.size() * w_.page); });
            return 0;
        }
        if (c.odd)
            begin_change(s);
        if (c.grace == Change::Grace::Before)
            grace_period();
        bool done[kMaxPages] = {}; // runs of a slot's pages are fewer than its pages
        for (size_t i = 0; i < ranges.size(); ++i) {
            const PageRange& r = ranges[i];
            auto res = call(c.call, address(s, r.a), [&] { return api(pointer(s, r.a), r.size() * w_.page); });
            done[i] = expect(res, 0, c.call, si, address(s, r.a), r.size() * w_.page);
        }
        if (c.grace == Change::Grace::After)
            grace_period();
        unsigned changed = 0;
        for (size_t i = 0; i < ranges.size(); ++i) {
            if (!done[i])
                continue;
            verify(ranges[i]);
            ++changed;
        }
        if (c.odd)
            end_change(s);
        return changed;
    }

    // The same for one range.
    template <typename Api, typename Verify>
    bool change(unsigned si, Slot& s, PageRange r, int expected, const Change& c, Api&& api, Verify&& verify)
    {
        return change(si, s, std::span<const PageRange>(&r, 1), expected, c, std::forward<Api>(api), std::forward<Verify>(verify)) == 1;
    }

private:
    World& w_;
    const unsigned index_;
    Rng rng_;
    Activity& act_;
    std::vector<uint64_t> buf_;
    char who_[32];

    void operate(unsigned si, Slot& s);
};

// A region's size in pages for a map: hot slots get 1-4 pages; the others
// mostly small regions, sometimes up to kMaxPages.
inline unsigned pick_map_size(Rng& rng, bool hot)
{
    if (hot)
        return 1 + rng.below(4);
    unsigned r = rng.below(100);
    if (r < 50)
        return 1 + rng.below(8);
    if (r < 85)
        return 9 + rng.below(24);
    return 33 + rng.below(kMaxPages - 32);
}

// -- the table of operations --------------------------------------------------

// Runs the operation on slot `si`, which the mutator holds.
using OperationFn = void (*)(Mutator& m, unsigned si, Slot& s);

// How often an operation is drawn for a slot in each of the states the loop
// tells apart, relative to the other operations' weights for that state
// (today's each add up to 100, so they read as percentages). Hot slots exist
// to make all accessors fault on the same pages, which only happens while
// those pages keep going away.
// File regions have their own columns: some operations only make sense on
// them (sync), and a few work on them differently or not at all (each
// operation's file says why).
struct Weights {
    unsigned empty = 0;     // the slot holds no mapping
    unsigned hot = 0;       // a hot slot (see kHotSlots) holding an anonymous mapping
    unsigned cold = 0;      // any other slot holding an anonymous mapping
    unsigned hot_file = 0;  // a hot slot holding a file region
    unsigned cold_file = 0; // any other slot holding a file region
    unsigned cow = 0;       // a slot holding a Clonable region or a clone (any slot: clones land in hot ones too)
    unsigned snapshot = 0;  // a slot holding a snapshot
};

struct Operation {
    const char* name;
    Weights weights;
    OperationFn run;
};

// Adds an operation to the table. Each mutator/<operation>.cc holds one at
// namespace scope, so the table is complete before main() runs.
struct RegisterOperation {
    explicit RegisterOperation(const Operation& op);
};

// -- operations outside the table ---------------------------------------------

// Unmaps all (full) or a random part of the slot's mutable pages
// (mutator/unmap.cc); unmap_everything uses it too.
void unmap_slot(Mutator& m, unsigned si, Slot& s, bool full);

// A read-only query of the whole runtime, racing with everything else
// (mutator/query.cc). It concerns no slot, so the loop runs it between
// operations.
void run_query(Mutator& m);

} // namespace stress
