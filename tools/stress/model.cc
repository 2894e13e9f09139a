// tools/stress/model.cc — value descriptions, the grace period, and the
// checks between phases (see model.h).
#include "model.h"

#include "watchdog.h"

#include <chrono>
#include <cstdio>
#include <thread>

namespace stress {

std::string describe_value(uint64_t v)
{
    char buf[160];
    if (v == 0)
        return "0";
    if ((v >> 56) == (kFileMark >> 56))
        std::snprintf(buf, sizeof buf, "%#llx (the initial contents of slot %u's file, page %u, word %u)", (unsigned long long)v,
            unsigned((v >> 23) & 0x3ff), unsigned((v >> 9) & 0x3f), unsigned(v & kWordMask));
    else if (!(v >> 63))
        std::snprintf(buf, sizeof buf, "%#llx (not a value the tool writes)", (unsigned long long)v);
    else
        std::snprintf(buf, sizeof buf, "%#llx (slot %u, incarnation %u, page %u, word %u, owner %u, counter %u)",
            (unsigned long long)v, unsigned((v >> 23) & 0x3ff), unsigned((v >> 33) & 0x7fff), unsigned((v >> 9) & 0x3f),
            unsigned(v & kWordMask), unsigned((v >> 15) & 0xff), unsigned((v >> 48) & 0x7fff));
    return buf;
}

void grace_period(World& w, Activity& activity)
{
    activity.begin("grace period (waiting for accessors)", 0);
    const uint64_t e = w.epoch.fetch_add(1) + 1;
    for (auto& a : w.accessors) {
        for (unsigned spins = 0; a->announce.load() < e; ++spins) {
            if (spins < 64)
                std::this_thread::yield();
            else
                std::this_thread::sleep_for(std::chrono::microseconds(20));
        }
    }
    activity.end();
}

uint64_t final_sweep(World& w)
{
    std::vector<uint64_t> buf(w.words);
    uint64_t bytes = 0;
    for (unsigned si = 0; si < w.opt.slots; ++si) {
        Slot& s = w.slots[si];
        if (!s.live.load())
            continue;
        const uintptr_t base = s.base.load();
        const Kind kind = s.kind.load();
        const unsigned first = s.first.load();
        for (unsigned p = 0; p < s.npages.load(); ++p) {
            const PageView v = unpack(s.pages[p].load());
            if (!v.mapped || !readable(v.access))
                continue;
            const uintptr_t a = base + size_t(p) * w.page;
            if (!guarded_read(reinterpret_cast<const uint64_t*>(a), buf.data(), w.words)) {
                failure("final sweep: SIGSEGV reading %#lx (slot %u page %u), which is mapped %s", (unsigned long)a, si, p,
                    access_name(v.access));
                continue;
            }
            const unsigned vpage = value_page(kind, first, p);
            const PageKey key { si, s.incarnation.load(), p, vpage, is_file(kind), w.untouched_page(si, kind, first, p) };
            const size_t record = record_index(si, kind, first, p);
            verify_page(w, buf.data(), key, a, v,
                [&](unsigned owner, uint64_t* expected) { return known_exactly(w, owner, record, v.zero_id, expected); },
                "final sweep");
            bytes += w.page;
        }
    }
    return bytes;
}

void check_tables(World& w, const char* when)
{
    auto regions = w.rt.regions();
    auto stats = w.rt.stats();
    size_t region_pages = 0;
    for (const RegionStats& r : regions) {
        for (uintptr_t q = r.base; q < r.base + r.size; q += w.page) {
            ++region_pages;
            auto it = w.owners.find(q);
            if (it == w.owners.end() || it->second.guard) {
                failure("%s: the runtime has region %#lx+%zu pages, but page %#lx is %s in the model", when, (unsigned long)r.base,
                    r.size / w.page, (unsigned long)q, it == w.owners.end() ? "unmapped" : "a guard page");
                break;
            }
            const Slot& s = w.slots[it->second.slot];
            const unsigned p = unsigned((q - s.base.load()) / w.page);
            const PageView v = unpack(s.pages[p].load());
            if (!v.mapped || v.access != r.access || v.immutable != has(r.flags, RegionFlags::Immutable) || r.name != kNames[s.name[p]]) {
                failure("%s: region %#lx+%zu pages (%s, %s, '%s') disagrees with slot %u page %u (%s%s, %s, '%s')", when,
                    (unsigned long)r.base, r.size / w.page, access_name(r.access), has(r.flags, RegionFlags::Immutable) ? "immutable" : "mutable",
                    r.name.c_str(), it->second.slot, p, v.mapped ? "" : "unmapped ", access_name(v.access),
                    v.immutable ? "immutable" : "mutable", kNames[s.name[p]]);
                break;
            }
        }
    }
    size_t model_pages = 0, committed_pages = 0;
    for (unsigned si = 0; si < w.opt.slots; ++si) {
        const Slot& s = w.slots[si];
        for (unsigned p = 0; p < s.npages.load(); ++p) {
            if (unpack(s.pages[p].load()).mapped) {
                ++model_pages;
                committed_pages += s.committed;
            }
        }
    }
    if (region_pages != model_pages)
        failure("%s: the runtime's regions cover %zu pages, the model has %zu mapped", when, region_pages, model_pages);
    if (stats.region_count != regions.size())
        failure("%s: stats().region_count is %zu but regions() lists %zu", when, stats.region_count, regions.size());
    if (stats.committed != committed_pages * w.page)
        failure("%s: stats().committed is %zu bytes, the model has %zu committed pages (%zu bytes)", when, stats.committed,
            committed_pages, committed_pages * w.page);
}

} // namespace stress
