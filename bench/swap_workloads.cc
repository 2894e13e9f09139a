// bench/swap_workloads.cc — budget_hotcold_heap (and its kernel_swap
// variant) and swap_in_rand.
//
// Every page of a region is written with a pattern that is a function of a
// per-repetition seed, the page and the word, so the checks recompute what
// each byte must be: a page swapped out and read back from the wrong slot,
// half written, or zero-filled fails the case.
#include "swap_workloads.h"

#include "swap_mappers.h"

#include <algorithm>
#include <random>
#include <sys/mman.h>
#include <vector>

namespace bench {

namespace {

// splitmix64's finaliser.
inline uint64_t mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

size_t words_per_page() { return page_size() / sizeof(uint64_t); }

// Word `k` of page `page` as written by the setup.
inline uint64_t pattern(uint64_t seed, size_t page, size_t k) { return mix(seed + page * words_per_page() + k); }

// The word of each page the timed loops access (spread over the page).
inline size_t access_word(size_t page) { return (page * 67) % words_per_page(); }

// Writes pages [first, first+n) of the pattern to `out` (their first byte).
void fill_pages(uint64_t seed, size_t first, size_t n, char* out)
{
    const size_t words = words_per_page();
    for (size_t p = 0; p < n; ++p) {
        uint64_t* w = reinterpret_cast<uint64_t*>(out + p * page_size());
        for (size_t k = 0; k < words; ++k)
            w[k] = pattern(seed, first + p, k);
    }
}

uint64_t new_seed() { return mix(now_ns()); }

// The first page of [0, pages) whose bytes are not the pattern with its
// access word raised by counts[page]; -1 if none. Checks the pages accessed
// (counts[page] > 0) and one in `stride` of the others. No allocation: the
// kernel_swap child runs it.
long first_wrong_page(const char* base, size_t pages, uint64_t seed, const uint32_t* counts, size_t stride = 1)
{
    const size_t words = words_per_page();
    for (size_t p = 0; p < pages; ++p) {
        if (counts[p] == 0 && p % stride != 0)
            continue;
        const uint64_t* w = reinterpret_cast<const uint64_t*>(base + p * page_size());
        const size_t changed = access_word(p);
        for (size_t k = 0; k < words; ++k) {
            const uint64_t want = pattern(seed, p, k) + (k == changed ? counts[p] : 0);
            if (w[k] != want)
                return long(p);
        }
    }
    return -1;
}

// The accesses: a fixed pseudo-random sequence, the same on every side and
// in every repetition; 90% on a hot tenth of the pages (scattered over the
// region), the rest on any page.
std::vector<uint32_t> hot_cold_accesses(size_t pages, size_t accesses)
{
    std::mt19937_64 rng(0x5a4b1d);
    std::vector<uint32_t> all(pages);
    for (size_t i = 0; i < pages; ++i)
        all[i] = uint32_t(i);
    std::shuffle(all.begin(), all.end(), rng);
    const size_t hot = std::max<size_t>(1, pages / 10);
    std::vector<uint32_t> order(accesses);
    for (size_t i = 0; i < accesses; ++i)
        order[i] = rng() % 10 < 9 ? all[rng() % hot] : uint32_t(rng() % pages);
    return order;
}

// The timed loop of budget_hotcold_heap: read a word, write it back plus one.
uint64_t read_modify_write(char* base, const std::vector<uint32_t>& order)
{
    const uint64_t t0 = now_ns();
    for (uint32_t page : order) {
        volatile uint64_t* w = reinterpret_cast<volatile uint64_t*>(base + size_t(page) * page_size()) + access_word(page);
        *w = *w + 1;
    }
    return now_ns() - t0;
}

struct HotCold {
    std::vector<uint32_t> order;
    std::vector<uint32_t> counts; // accesses per page in one repetition
    size_t pages = 0;
};

std::shared_ptr<HotCold> make_hot_cold(size_t region_bytes, size_t accesses)
{
    auto h = std::make_shared<HotCold>();
    h->pages = region_bytes / page_size();
    h->order = hot_cold_accesses(h->pages, accesses);
    h->counts.assign(h->pages, 0);
    for (uint32_t page : h->order)
        ++h->counts[page];
    return h;
}

// A Clock or FIFO side of budget_hotcold_heap: the region written with a new
// seed, the evictor let finish; the check reads back every page.
struct HeapSide {
    std::unique_ptr<SwapHeapMapper> mapper;
    std::function<void(const char*)> verify;
};

HeapSide heap_side(std::shared_ptr<HotCold> h, const faultline::Config& config, const std::string& label)
{
    auto seed = std::make_shared<uint64_t>(0);
    HeapSide s;
    s.mapper = std::make_unique<SwapHeapMapper>(config, [seed](faultline::Runtime& rt, char* base, size_t bytes) {
        *seed = new_seed();
        fill_pages(*seed, 0, bytes / page_size(), base);
        wait_for_swap_out(rt, bytes / page_size());
    }, label);
    s.verify = [h, seed, m = s.mapper.get(), label](const char* base) {
        // The budget's figures before the check, which swaps every page in.
        const faultline::RuntimeStats st = m->runtime().stats();
        const long bad = first_wrong_page(base, h->pages, *seed, h->counts.data());
        if (bad >= 0)
            fail("budget_hotcold_heap (" + label + "): page " + std::to_string(bad) +
                 " does not hold what was last written to it");
        if (st.swapped_out == 0)
            fail("budget_hotcold_heap (" + label + "): nothing was swapped out; the budget did not apply");
        if (st.budget_resident_bytes > st.memory_budget + st.memory_budget / 8)
            fail("budget_hotcold_heap (" + label + "): " + std::to_string(st.budget_resident_bytes >> 10) +
                 " KiB resident, over the budget of " + std::to_string(st.memory_budget >> 10) + " KiB");
    };
    return s;
}

} // namespace

SwapCase budget_hotcold_heap(std::string name, size_t region_bytes, size_t accesses, faultline::Config config)
{
    auto h = make_hot_cold(region_bytes, accesses);
    config.memory_budget = region_bytes / 4;
    faultline::Config fifo = config;
    config.eviction_policy = faultline::EvictionPolicy::Clock;
    fifo.eviction_policy = faultline::EvictionPolicy::Fifo;
    HeapSide clock_side = heap_side(h, config, "faultline");
    HeapSide fifo_side = heap_side(h, fifo, "faultline-fifo");
    SwapCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ns/access";
    w.bytes = h->pages * page_size();
    w.units = h->order.size();
    w.run = [h](char* base) { return read_modify_write(base, h->order); };
    w.verify = clock_side.verify;
    w.baseline_run = w.run;
    w.baseline_verify = fifo_side.verify;
    c.faultline = std::move(clock_side.mapper);
    c.baseline = std::move(fifo_side.mapper);
    return c;
}

SwapCase budget_hotcold_heap_kernel(std::string name, size_t region_bytes, size_t accesses, faultline::Config config)
{
    auto h = make_hot_cold(region_bytes, accesses);
    const size_t budget = region_bytes / 4;
    // Room for the whole region in swap, whatever the kernel keeps resident.
    auto swap = std::make_shared<KernelSwap>(region_bytes + region_bytes / 4, budget);
    config.memory_budget = budget;
    config.eviction_policy = faultline::EvictionPolicy::Clock;
    HeapSide clock_side = heap_side(h, config, "faultline");
    // The child's copy of the seed: set by its prepare, read by its check.
    auto seed = std::make_shared<uint64_t>(0);
    auto kernel = std::make_unique<KernelSwapMapper>(
        swap, [seed](char* base, size_t bytes) {
            *seed = new_seed();
            fill_pages(*seed, 0, bytes / page_size(), base);
        },
        [h](char* base) { return read_modify_write(base, h->order); },
        // Every page the loop wrote and one in 16 of the others: the kernel
        // reads them back from the disk (the whole region would take 5 s).
        [h, seed](const char* base) { return first_wrong_page(base, h->pages, *seed, h->counts.data(), 16); });
    SwapCase c;
    c.setup = swap->describe();
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ns/access";
    w.bytes = h->pages * page_size();
    w.units = h->order.size();
    w.run = [h](char* base) { return read_modify_write(base, h->order); };
    w.verify = clock_side.verify;
    w.baseline_run = [k = kernel.get()](char*) { return k->run(); };
    w.baseline_verify = [k = kernel.get()](const char*) { k->verify(); };
    w.baseline_cpu_ns = [k = kernel.get()] { return k->cpu_ns(); };
    c.faultline = std::move(clock_side.mapper);
    c.baseline = std::move(kernel);
    return c;
}

namespace {

// What a timed loop of swap_in_rand makes of one page: its access word,
// weighted by the page's index (a page read at the wrong place changes it).
inline uint64_t weigh(uint64_t word, size_t page) { return word * (2 * page + 1); }

uint64_t expected_sum(uint64_t seed, const uint32_t* pages, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; ++i)
        sum += weigh(pattern(seed, pages[i], access_word(pages[i])), pages[i]);
    return sum;
}

struct RandState {
    std::vector<uint32_t> order; // every page, shuffled once
    size_t reads = 0;
    // Of the last repetition on each side.
    std::vector<uint32_t> read; // the pages faultline's side read, in order
    uint64_t faultline_sum = 0;
    uint64_t baseline_sum = 0;
    uint64_t seed = 0;          // faultline's region's pattern
    uint64_t swapped_in_before = 0;
};

} // namespace

SwapCase swap_in_rand(std::string name, size_t region_bytes, size_t budget_bytes, faultline::Config config)
{
    auto st = std::make_shared<RandState>();
    const size_t pages = region_bytes / page_size();
    st->order.resize(pages);
    for (size_t i = 0; i < pages; ++i)
        st->order[i] = uint32_t(i);
    std::shuffle(st->order.begin(), st->order.end(), std::mt19937_64(0x5eed5a));
    st->reads = pages - budget_bytes / page_size();
    config.memory_budget = budget_bytes;

    auto fl = std::make_unique<SwapHeapMapper>(config, [st](faultline::Runtime& rt, char* base, size_t bytes) {
        st->seed = new_seed();
        fill_pages(st->seed, 0, bytes / page_size(), base);
        wait_for_swap_out(rt, bytes / page_size());
    });
    auto reader = std::make_unique<FreshFileReader>(fill_pages);
    SwapCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ns/page";
    w.bytes = pages * page_size();
    w.units = st->reads;
    w.run = [st, m = fl.get(), pages](char* base) {
        // Untimed: which pages are out (mincore), in the fixed order.
        std::vector<unsigned char> resident(pages);
        if (mincore(base, pages * page_size(), resident.data()) != 0)
            fail("mincore of the region failed");
        st->read.clear();
        for (uint32_t page : st->order)
            if (!(resident[page] & 1) && st->read.size() < st->reads)
                st->read.push_back(page);
        if (st->read.size() < st->reads)
            fail("swap_in_rand: only " + std::to_string(st->read.size()) + " pages are swapped out, " +
                 std::to_string(st->reads) + " needed");
        st->swapped_in_before = m->runtime().stats().swapped_in;
        uint64_t sum = 0;
        const uint64_t t0 = now_ns();
        for (uint32_t page : st->read)
            sum += weigh(*(reinterpret_cast<const volatile uint64_t*>(base + size_t(page) * page_size()) + access_word(page)), page);
        const uint64_t elapsed = now_ns() - t0;
        st->faultline_sum = sum;
        return elapsed;
    };
    w.verify = [st, m = fl.get()](const char* base) {
        const faultline::RuntimeStats s = m->runtime().stats();
        if (st->faultline_sum != expected_sum(st->seed, st->read.data(), st->read.size()))
            fail("swap_in_rand: the words read back from swap are not the ones written");
        if (s.swapped_out == 0)
            fail("swap_in_rand: nothing was swapped out");
        if (s.swapped_in - st->swapped_in_before < st->reads)
            fail("swap_in_rand: " + std::to_string(s.swapped_in - st->swapped_in_before) + " pages swapped in for " +
                 std::to_string(st->reads) + " reads of swapped-out pages");
        // Every byte of one page in 32 read (a swap-in each, mostly).
        for (size_t i = 0; i < st->read.size(); i += 32) {
            const size_t page = st->read[i];
            const uint64_t* words = reinterpret_cast<const uint64_t*>(base + page * page_size());
            for (size_t k = 0; k < words_per_page(); ++k)
                if (words[k] != pattern(st->seed, page, k))
                    fail("swap_in_rand: page " + std::to_string(page) + " does not hold what was written to it");
        }
    };
    w.baseline_run = [st, r = reader.get()](char*) {
        uint64_t sum = 0;
        const uint64_t t0 = now_ns();
        for (size_t i = 0; i < st->reads; ++i) {
            const uint32_t page = st->order[i];
            sum += weigh(*(reinterpret_cast<const volatile uint64_t*>(r->read(page)) + access_word(page)), page);
        }
        const uint64_t elapsed = now_ns() - t0;
        st->baseline_sum = sum;
        return elapsed;
    };
    w.baseline_verify = [st, r = reader.get()](const char*) {
        if (st->baseline_sum != expected_sum(r->seed(), st->order.data(), st->reads))
            fail("swap_in_rand: the io_uring reads returned other bytes than were written");
    };
    c.faultline = std::move(fl);
    c.baseline = std::move(reader);
    return c;
}

} // namespace bench
