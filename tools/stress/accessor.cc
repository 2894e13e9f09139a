// tools/stress/accessor.cc — the accessor threads (see accessor.h and, for
// what they check, model.h).
#include "accessor.h"

#include "model.h"
#include "signals.h"
#include "watchdog.h"

#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace stress {

namespace {

constexpr unsigned kMaxVisitPages = 8; // pages one accessor visit touches at most

struct Observation {
    unsigned page = 0;
    PageView view;
    uintptr_t address = 0;
    bool wrote = false, write_ok = false;
    bool read = false, read_ok = false;
    bool probed_write = false, probed_read = false, probe_ok = false;
    // The accessor's own words at the time of the read: exactly this value
    // (if the visit turns out stable) or unknown.
    bool own_exact = false;
    uint64_t own_base = 0;
    Span spans[2];
    unsigned nspans = 0;
    unsigned vpage = 0;  // value_page
    size_t record = 0;   // record_index
};

class Accessor {
public:
    Accessor(World& w, unsigned index, uint64_t seed)
        : w_(w)
        , t_(index)
        , rng_(seed)
        , me_(*w.accessors[index])
        , act_(w.activities[index])
        , buf_(size_t(kMaxVisitPages) * w.words)
        , untouched_(size_t(kMaxVisitPages) * w.words)
    {
    }

    void run()
    {
        char name[16];
        std::snprintf(name, sizeof name, "stress-acc%u", t_);
        pthread_setname_np(pthread_self(), name);
        prepare_thread_for_faults();
        // Accessors run at a lower priority (see Options::accessor_nice).
        // Raising a thread's nice value needs no privilege; failing is harmless.
        if (w_.opt.accessor_nice)
            (void)setpriority(PRIO_PROCESS, id_t(syscall(SYS_gettid)), w_.opt.accessor_nice);
        while (!w_.stop.load(std::memory_order_relaxed)) {
            // Nothing to do (an empty or changing slot): let the mutators run,
            // which matters on machines with fewer CPUs than threads.
            if (!visit())
                std::this_thread::yield();
        }
    }

private:
    World& w_;
    const unsigned t_;
    Rng rng_;
    AccessorState& me_;
    Activity& act_;
    std::vector<uint64_t> buf_;
    std::vector<uint64_t> untouched_; // file pages: the shadow's words for each read, copied during the visit

    bool visit()
    {
        const bool hot = rng_.percent(25);
        const unsigned si = hot ? rng_.below(kHotSlots) : rng_.below(w_.opt.slots);
        Slot& s = w_.slots[si];

        me_.announce.store(w_.epoch.load());
        const uint64_t s1 = s.seq.load();
        if ((s1 & 1) || !s.live.load(std::memory_order_acquire)) {
            me_.announce.store(kIdle);
            return false;
        }
        // Acquire loads throughout the visit: see the closing sequence read.
        const uintptr_t base = s.base.load(std::memory_order_acquire);
        const unsigned n = s.npages.load(std::memory_order_acquire);
        const uint32_t inc = s.incarnation.load(std::memory_order_acquire);
        const Kind kind = s.kind.load(std::memory_order_acquire);
        const unsigned first = s.first.load(std::memory_order_acquire);
        // A torn view (the sequence check would drop it) must not send the
        // indexes below out of bounds.
        if (n == 0 || n > kMaxPages || (is_file(kind) && first + n > kMaxPages)) {
            me_.announce.store(kIdle);
            return false;
        }

        unsigned list[kMaxVisitPages];
        unsigned k = 1 + rng_.below(kMaxVisitPages);
        if (hot) {
            k = 1 + rng_.below(2);
            for (unsigned i = 0; i < k; ++i)
                list[i] = rng_.below(std::min(n, kHotPages));
        } else if (rng_.percent(50)) {
            // A run of neighbours, so fault-around windows get used and split.
            unsigned start = rng_.below(n);
            k = std::min(k, n - start);
            for (unsigned i = 0; i < k; ++i)
                list[i] = start + i;
        } else {
            for (unsigned i = 0; i < k; ++i)
                list[i] = rng_.below(n);
        }

        Observation obs[kMaxVisitPages];
        unsigned count = 0;
        for (unsigned i = 0; i < k; ++i) {
            const unsigned p = list[i];
            const PageView v = unpack(s.pages[p].load(std::memory_order_acquire));
            if (!v.mapped)
                continue;
            Observation& o = obs[count];
            uint64_t* out = buf_.data() + size_t(count) * w_.words;
            ++count;
            o.page = p;
            o.view = v;
            o.address = base + size_t(p) * w_.page;
            auto* words = reinterpret_cast<uint64_t*>(o.address);
            o.vpage = value_page(kind, first, p);
            o.record = record_index(si, kind, first, p);
            Record& r = me_.records[o.record];

            if (writable(v.access) && rng_.percent(50)) {
                // The record is updated now, so that a later observation of
                // the same page in this visit expects this write; it becomes
                // uncertain below if the visit turns out unstable.
                r.counter += 1;
                r.value_base = value_base(si, inc, o.vpage, t_, r.counter);
                r.zero_id = v.zero_id;
                r.valid = true;
                act_.begin("write", o.address);
                o.wrote = true;
                o.write_ok = guarded_write(words, t_, w_.opt.threads, w_.words, r.value_base);
                act_.end();
                r.certain = o.write_ok;
            }
            if (readable(v.access)) {
                o.own_exact = r.valid && r.certain && r.zero_id == v.zero_id;
                o.own_base = r.value_base;
                // A quarter of the reads check the whole page. The rest
                // check the accessor's own words (exactly) and one random
                // 128-byte chunk: a page from the wrong place is wrong in
                // every word, and checking 4 KiB on every touch would leave
                // little CPU for the mutators whose churn makes the faults.
                if (rng_.percent(25) || w_.words < 32) {
                    o.spans[0] = { 0, w_.words, 1 };
                    o.nspans = 1;
                } else {
                    const size_t chunk = 16 * rng_.below(unsigned(w_.words / 16));
                    o.spans[0] = { chunk, chunk + 16, 1 };
                    o.spans[1] = { t_, w_.words, w_.opt.threads };
                    o.nspans = 2;
                }
                act_.begin("read", o.address);
                o.read = true;
                o.read_ok = guarded_read(words, out, o.spans, o.nspans);
                act_.end();
                // What the untouched words of a file or copy-on-write page
                // hold, read before the closing sequence check like
                // everything it is checked against (the shadows change only
                // while the slot changes).
                if (const uint64_t* shadow = w_.untouched_page(si, kind, first, p)) {
                    uint64_t* u = untouched_.data() + size_t(count - 1) * w_.words;
                    for (unsigned k = 0; k < o.nspans; ++k)
                        for (size_t j = o.spans[k].lo; j < o.spans[k].hi; j += o.spans[k].stride)
                            u[j] = shadow_load(shadow + j);
                }
                if (!writable(v.access) && rng_.percent(12)) {
                    act_.begin("write probe", o.address);
                    o.probed_write = true;
                    o.probe_ok = guarded_probe_write(words + t_);
                    act_.end();
                }
            } else if (rng_.percent(25)) {
                act_.begin("read probe", o.address);
                o.probed_read = true;
                o.probe_ok = guarded_probe_read(words);
                act_.end();
            }
        }

        // Every load above is an acquire load (the model's words, the page
        // contents, the probes), so none of them can be ordered after this
        // read: if the sequence is unchanged, they all saw the state it
        // stands for. (A seqlock usually puts a fence here; TSan does not
        // understand fences.)
        const uint64_t s2 = s.seq.load();
        const bool stable = s1 == s2;
        // Writes of an unstable visit become uncertain before the visit ends:
        // a mutator that waited for this accessor (a grace period) may read
        // the records of the slot next (map_file, sync, discard).
        for (unsigned i = 0; i < count; ++i)
            if (obs[i].wrote && !stable)
                me_.records[obs[i].record].certain = false;
        me_.announce.store(kIdle);

        me_.visits.fetch_add(1, std::memory_order_relaxed);
        unsigned segvs = 0;
        for (unsigned i = 0; i < count; ++i) {
            const Observation& o = obs[i];
            segvs += (o.wrote && !o.write_ok) + (o.read && !o.read_ok) + ((o.probed_read || o.probed_write) && !o.probe_ok);
        }
        me_.segv_caught.fetch_add(segvs, std::memory_order_relaxed);
        if (!stable)
            return true;
        me_.stable_visits.fetch_add(1, std::memory_order_relaxed);

        char who[48];
        std::snprintf(who, sizeof who, "accessor %u", t_);
        uint64_t verified = 0;
        for (unsigned i = 0; i < count; ++i) {
            const Observation& o = obs[i];
            if (o.wrote && !o.write_ok)
                failure("%s: SIGSEGV writing %#lx (slot %u page %u), which is mapped %s", who, (unsigned long)o.address, si, o.page,
                    access_name(o.view.access));
            if (o.read && !o.read_ok)
                failure("%s: SIGSEGV reading %#lx (slot %u page %u), which is mapped %s", who, (unsigned long)o.address, si, o.page,
                    access_name(o.view.access));
            if (o.probed_write && o.probe_ok)
                failure("%s: writing %#lx (slot %u page %u), which is mapped %s, did not fault", who, (unsigned long)o.address, si,
                    o.page, access_name(o.view.access));
            if (o.probed_read && o.probe_ok)
                failure("%s: reading %#lx (slot %u page %u), which is mapped %s, did not fault", who, (unsigned long)o.address, si,
                    o.page, access_name(o.view.access));
            if (o.read && o.read_ok) {
                const uint64_t* data = buf_.data() + size_t(i) * w_.words;
                const PageKey key { si, inc, o.page, o.vpage, is_file(kind),
                    (is_file(kind) || is_cow(kind)) ? untouched_.data() + size_t(i) * w_.words : nullptr };
                verify_words(w_, data, o.spans, o.nspans, key, o.address, o.view,
                    [&](unsigned owner, uint64_t* base_out) {
                        if (owner != t_ || !o.own_exact)
                            return false;
                        *base_out = o.own_base;
                        return true;
                    },
                    who);
                for (unsigned k = 0; k < o.nspans; ++k)
                    verified += o.spans[k].count() * sizeof(uint64_t);
            }
        }
        me_.bytes_verified.fetch_add(verified, std::memory_order_relaxed);
        return true;
    }
};

} // namespace

void run_accessor(World& w, unsigned index, uint64_t seed) { Accessor(w, index, seed).run(); }

} // namespace stress
