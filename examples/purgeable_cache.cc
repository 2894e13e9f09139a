// examples/purgeable_cache.cc — a cache of expensive items in purgeable
// memory (docs/purgeable.md).
//
//   faultline-purgeable-cache [ITEMS] [ACCESSES] [BUDGET_MIB]
//
// Each item (1 MiB, costly to compute) lives in its own purgeable region.
// While it is being used it is pinned (non-volatile); in between it is
// volatile, and the runtime may purge it: here a purge budget of BUDGET_MIB
// applies the pressure (Config::purge.budget), as memory pressure (PSI) or a
// tight commit limit would. Pinning an item tells whether it was purged
// meanwhile, so the cache recomputes exactly the items that were lost and
// never reads stale or half-dropped data. Prints hits, misses, purges and
// regenerations, and checks every item it uses.
#include <faultline/runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

constexpr size_t kItemBytes = size_t(1) << 20;

// The "expensive" computation: a few rounds of a hash over the item.
void compute(uint64_t* words, size_t count, size_t item)
{
    uint64_t x = item * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < count; ++i) {
        for (int round = 0; round < 4; ++round)
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        words[i] = x;
    }
}

bool intact(const uint64_t* words, size_t count, size_t item)
{
    std::vector<uint64_t> expect(count);
    compute(expect.data(), count, item);
    return std::memcmp(words, expect.data(), count * sizeof(uint64_t)) == 0;
}

struct Item {
    char* base = nullptr;
    bool computed = false;
};

} // namespace

int main(int argc, char** argv)
{
    const size_t items = argc > 1 ? strtoul(argv[1], nullptr, 0) : 48;
    const size_t accesses = argc > 2 ? strtoul(argv[2], nullptr, 0) : 3000;
    const size_t budget_mib = argc > 3 ? strtoul(argv[3], nullptr, 0) : 8;
    if (items == 0 || accesses == 0) {
        std::fprintf(stderr, "usage: %s [ITEMS>0] [ACCESSES>0] [BUDGET_MIB]\n", argv[0]);
        return 2;
    }

    faultline::Config config;
    config.purge.budget = budget_mib << 20; // volatile resident bytes allowed
    auto rt = faultline::Runtime::create(config);
    if (!rt) {
        std::fprintf(stderr, "cannot create a runtime: %s\n", rt.error().message());
        return 1;
    }
    std::atomic<uint64_t> purge_events { 0 };
    (void)(*rt)->set_purge_callbacks({ .after_purge = [&](const faultline::PurgeEvent& e) {
        // On the runtime's purge worker thread, never a fault handler.
        if (e.purged_bytes)
            purge_events.fetch_add(1);
    } });

    std::vector<Item> cache(items);
    for (size_t i = 0; i < items; ++i) {
        auto p = (*rt)->allocate_purgeable(kItemBytes, { .name = "cache-item" });
        if (!p) {
            std::fprintf(stderr, "allocate_purgeable failed: %s\n", p.error().message());
            return 1;
        }
        cache[i].base = static_cast<char*>(*p);
        // Unpinned from the start: nothing to keep yet.
        (void)(*rt)->set_volatile(cache[i].base, kItemBytes);
    }

    // A skewed access pattern: a few items are hot, most are cold.
    std::mt19937 rng(42);
    std::geometric_distribution<size_t> pick(4.0 / double(items));
    uint64_t hits = 0, misses = 0, regenerations = 0, bad = 0;
    for (size_t n = 0; n < accesses; ++n) {
        Item& item = cache[pick(rng) % items];
        const size_t index = size_t(&item - cache.data());
        // Pin it, and learn whether it was purged while unpinned.
        auto pinned = (*rt)->set_nonvolatile(item.base, kItemBytes);
        if (!pinned) {
            std::fprintf(stderr, "pinning item %zu failed: %s\n", index, pinned.error().message());
            return 1;
        }
        auto* words = reinterpret_cast<uint64_t*>(item.base);
        if (!item.computed || pinned->purged) {
            ++misses;
            regenerations += item.computed; // it had been computed once: a purge cost us this
            compute(words, kItemBytes / sizeof(uint64_t), index);
            item.computed = true;
        } else {
            ++hits;
        }
        bad += !intact(words, kItemBytes / sizeof(uint64_t), index);
        (void)(*rt)->set_volatile(item.base, kItemBytes); // unpin: purgeable again
    }

    const faultline::PurgeStats st = (*rt)->purge_stats();
    std::printf("items: %zu x 1 MiB, accesses: %zu, purge budget: %zu MiB\n", items, accesses, budget_mib);
    std::printf("hits: %llu, misses: %llu, regenerations after a purge: %llu\n", (unsigned long long)hits,
        (unsigned long long)misses, (unsigned long long)regenerations);
    std::printf("purges: %llu spans (%llu MiB dropped; %llu by the budget), volatile resident now: %zu MiB\n",
        (unsigned long long)purge_events.load(), (unsigned long long)(st.purged_bytes >> 20),
        (unsigned long long)st.budget_purges, st.volatile_resident >> 20);
    std::printf("items that did not hold their computed contents when used: %llu\n", (unsigned long long)bad);
    return bad == 0 ? 0 : 1;
}
