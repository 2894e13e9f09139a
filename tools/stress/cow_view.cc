// tools/stress/cow_view.cc — clone and snapshot, checked (see cow_view.h).
#include "cow_view.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace stress {

bool read_slot(Mutator& m, unsigned si, const Slot& s, unsigned n, uint64_t* out, const char* what)
{
    World& w = m.world();
    for (unsigned p = 0; p < n; ++p) {
        const uintptr_t a = m.address(s, p);
        m.activity().begin(what, a);
        const bool ok = guarded_read(reinterpret_cast<const uint64_t*>(a), out + size_t(p) * w.words, w.words);
        m.activity().end();
        if (!ok) {
            failure("%s: %s: SIGSEGV reading %#lx (slot %u page %u), which is mapped %s", m.who(), what, (unsigned long)a, si, p,
                access_name(m.view(s, p).access));
            return false;
        }
    }
    return true;
}

unsigned verify_slot(Mutator& m, unsigned si, const Slot& s, unsigned n, const uint64_t* data, const char* what)
{
    World& w = m.world();
    unsigned bad = 0;
    for (unsigned p = 0; p < n; ++p) {
        const PageView v = m.view(s, p);
        const size_t record = m.record(si, s, p);
        bad += verify_page(w, data + size_t(p) * w.words, m.page_key(si, s, p), m.address(s, p), v,
            [&](unsigned owner, uint64_t* base) { return known_exactly(w, owner, record, v.zero_id, base); }, what);
    }
    w.mutator_bytes_verified.fetch_add(size_t(n) * w.page, std::memory_order_relaxed);
    return bad;
}

bool take_slot(Mutator& m, unsigned si, unsigned j)
{
    return j != si && !m.world().slots[j].busy.exchange(true, std::memory_order_acquire);
}

void release_slot(Mutator& m, unsigned j) { m.world().slots[j].busy.store(false, std::memory_order_release); }

int take_empty_slot(Mutator& m, unsigned si)
{
    World& w = m.world();
    for (unsigned tries = 0; tries < 8; ++tries) {
        const unsigned j = m.rng().below(w.opt.slots);
        if (!take_slot(m, si, j))
            continue;
        if (!w.slots[j].live.load(std::memory_order_relaxed))
            return int(j);
        release_slot(m, j);
    }
    return -1;
}

namespace {

// The record counters of every owner for every page of slot si, as the
// accessors left them (read while none can be in the slot).
void read_counters(Mutator& m, unsigned si, const Slot& s, unsigned n, std::vector<uint32_t>& out)
{
    World& w = m.world();
    out.resize(size_t(n) * w.opt.threads);
    for (unsigned p = 0; p < n; ++p)
        for (unsigned t = 0; t < w.opt.threads; ++t)
            out[size_t(p) * w.opt.threads + t] = w.accessors[t]->records[m.record(si, s, p)].counter;
}

} // namespace

void make_cow_view(Mutator& m, unsigned si, Slot& s, bool snapshot)
{
    World& w = m.world();
    const unsigned n = m.npages(s);
    // Copy-on-write slots lose pages only by a full unmap (their operations
    // never split them), so the region at page 0 is the whole slot.
    for (unsigned p = 0; p < n; ++p)
        if (!m.view(s, p).mapped)
            return;
    const int dj = take_empty_slot(m, si);
    if (dj < 0)
        return;
    Slot& d = w.slots[dj];
    const char* what = snapshot ? "snapshot" : "clone";
    const bool racing = m.rng().percent(50);
    const size_t words = w.words;
    const unsigned threads = w.opt.threads;
    std::vector<uint64_t> before(size_t(n) * words), copy(size_t(n) * words);
    std::vector<uint32_t> counters_before, counters_after;

    // Quiesce the source and read what it holds now.
    begin_change(s);
    m.grace_period();
    bool readable_ok = read_slot(m, si, s, n, before.data(), snapshot ? "read before snapshot" : "read before clone");
    if (readable_ok)
        verify_slot(m, si, s, n, before.data(), snapshot ? "source before snapshot" : "source before clone");
    read_counters(m, si, s, n, counters_before);
    // A racing view lets the accessors write the source during the call.
    if (racing)
        end_change(s);

    {
        // Like a map: the new region's addresses are claimed under the lock
        // that serialises maps and unmaps (model.h, "Address reuse").
        std::lock_guard reuse(w.reuse_lock);
        begin_change(d);
        void* src = m.pointer(s, 0);
        auto r = m.call(what, m.address(s, 0), [&] { return snapshot ? w.rt.snapshot(src) : w.rt.clone(src); });
        if (racing) {
            begin_change(s);
            m.grace_period();
        }
        if (!m.expect(r, 0, what, si, m.address(s, 0), size_t(n) * w.page) || !readable_ok) {
            if (r) // keep the model and the runtime in agreement: give it back
                (void)w.rt.unmap(*r, size_t(n) * w.page);
            end_change(d);
            end_change(s);
            release_slot(m, unsigned(dj));
            return;
        }
        const uintptr_t a = uintptr_t(*r);
        m.claim(unsigned(dj), a, n, 0, what);

        std::vector<uint64_t> after;
        if (racing) {
            // The source must have kept every write the accessors made
            // during the call (a racing write is never lost, docs/cow.md).
            after.resize(size_t(n) * words);
            if (read_slot(m, si, s, n, after.data(), snapshot ? "read after racing snapshot" : "read after racing clone"))
                verify_slot(m, si, s, n, after.data(), snapshot ? "source after racing snapshot" : "source after racing clone");
            read_counters(m, si, s, n, counters_after);
        }

        // The view itself: read before any accessor may touch it.
        bool copy_ok = true;
        for (unsigned p = 0; p < n && copy_ok; ++p) {
            m.activity().begin(snapshot ? "read new snapshot" : "read new clone", a + size_t(p) * w.page);
            copy_ok = guarded_read(reinterpret_cast<const uint64_t*>(a + size_t(p) * w.page), copy.data() + size_t(p) * words, words);
            m.activity().end();
            if (!copy_ok)
                failure("%s: SIGSEGV reading the new %s at %#lx (of slot %u page %u)", m.who(), what, (unsigned long)(a + size_t(p) * w.page),
                    si, p);
        }
        const uint32_t inc = s.incarnation.load(std::memory_order_relaxed);
        unsigned bad = 0;
        uint64_t changed = 0;
        for (unsigned p = 0; p < n && copy_ok; ++p) {
            for (size_t i = 0; i < words; ++i) {
                const size_t k = size_t(p) * words + i;
                const uint64_t v = copy[k], b = before[k];
                if (v == b)
                    continue;
                const unsigned owner = unsigned(i % threads);
                const size_t c = size_t(p) * threads + owner;
                // Racing: a value the owner wrote to this page during the call.
                const bool ok = racing && plausible(v, si, inc, value_page(Kind::Cow, 0, p), i, owner)
                    && counter_in(uint32_t(v >> 48) & 0x7fff, counters_before[c], counters_after[c]);
                if (ok) {
                    ++changed;
                    continue;
                }
                if (bad++ == 0)
                    failure("%s: %s of slot %u (%u pages, %s) at %#lx, page %u word %zu: read %s; the source held %s before the call "
                            "and %s after; owner %u's counters %u..%u",
                        m.who(), what, si, n, racing ? "racing writers" : "quiesced", (unsigned long)(a + size_t(p) * w.page), p, i,
                        describe_value(v).c_str(), describe_value(b).c_str(), racing ? describe_value(after[k]).c_str() : "(the same)",
                        owner, counters_before[c], racing ? counters_after[c] : counters_before[c]);
            }
        }
        if (bad > 1)
            failure("%s: %s of slot %u: %u bad words in all", m.who(), what, si, bad);
        if (snapshot) // read-only, and never made writable (docs/cow.md)
            m.probe("write to a new snapshot", unsigned(dj), a + 8 * m.rng().below(unsigned(words)), true, true);

        // What the view held is now its untouched contents.
        for (unsigned p = 0; p < n; ++p) {
            uint64_t* shadow = w.cow_shadow_page(unsigned(dj), p);
            for (size_t i = 0; i < words; ++i)
                shadow_store(shadow + i, copy[size_t(p) * words + i]);
        }
        const PageView v0 = m.view(s, 0);
        m.publish(d, unsigned(dj),
            { .base = a, .npages = n, .kind = snapshot ? Kind::Snapshot : Kind::Cow, .access = snapshot ? Access::Read : v0.access,
                .max_access = snapshot ? Access::Read : s.max_access, .name = s.name[0], .committed = s.committed });
        d.frozen = true;
        d.clone_depth = s.clone_depth + 1;
        if (snapshot) {
            d.snapshot_of = si;
            d.snapshot_of_id = s.region_id;
            // Forget snapshots that may be gone; rollback.cc checks the rest.
            if (s.snapshots.size() >= 8)
                s.snapshots.erase(s.snapshots.begin());
            s.snapshots.push_back(unsigned(dj));
        }
        s.frozen = true;
        end_change(d);

        (snapshot ? w.snapshots : w.clones).fetch_add(1, std::memory_order_relaxed);
        if (racing) {
            w.racing_views.fetch_add(1, std::memory_order_relaxed);
            w.racing_words.fetch_add(changed, std::memory_order_relaxed);
        }
        w.cow_bytes_verified.fetch_add(size_t(n) * w.page, std::memory_order_relaxed);
        w.mutator_bytes_verified.fetch_add(size_t(n) * w.page, std::memory_order_relaxed);
        unsigned depth = w.max_clone_depth.load();
        while (d.clone_depth > depth && !w.max_clone_depth.compare_exchange_weak(depth, d.clone_depth)) {
        }
    }
    end_change(s);
    release_slot(m, unsigned(dj));
}

unsigned count_cow_memfds()
{
    // Clonable regions (and their copies) are named kNames[kCowName], and
    // their memfds after them.
    const std::string want = std::string("/memfd:") + kNames[kCowName];
    unsigned count = 0;
    DIR* dir = opendir("/proc/self/fd");
    if (!dir)
        return 0;
    while (dirent* e = readdir(dir)) {
        char path[300], target[256];
        std::snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        const ssize_t len = readlink(path, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = 0;
        if (std::strncmp(target, want.c_str(), want.size()) == 0)
            ++count;
    }
    closedir(dir);
    return count;
}

} // namespace stress
