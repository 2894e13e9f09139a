// bench/budget_workloads.cc — file_budget_hotcold.
#include "budget_workloads.h"

#include "file_mappers.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

namespace bench {

namespace {

// The reads: a fixed pseudo-random sequence, the same on both sides and in
// every repetition.
std::vector<uint32_t> hot_cold_reads(size_t pages, size_t reads)
{
    std::mt19937_64 rng(0xb0d6e7);
    std::vector<uint32_t> all(pages);
    for (size_t i = 0; i < pages; ++i)
        all[i] = uint32_t(i);
    std::shuffle(all.begin(), all.end(), rng);
    const size_t hot = std::max<size_t>(1, pages / 10);
    std::vector<uint32_t> order(reads);
    for (size_t i = 0; i < reads; ++i)
        order[i] = rng() % 10 < 9 ? all[rng() % hot] : uint32_t(rng() % pages);
    return order;
}

// Reads one 8-byte word of each page in `order` and checks it against the
// file: the timed loop and its check in one (a wrong byte fails the case).
uint64_t read_and_check(const TestFile& file, const char* base, const std::vector<uint32_t>& order, bool check)
{
    uint64_t sum = 0;
    for (uint32_t page : order) {
        const size_t off = size_t(page) * page_size() + (page % 64) * 64;
        const uint64_t v = *reinterpret_cast<const volatile uint64_t*>(base + off);
        if (check) {
            uint64_t want;
            file.expected(off, sizeof want, reinterpret_cast<char*>(&want));
            if (v != want)
                fail("file_budget_hotcold: page " + std::to_string(page) + " reads wrong bytes under the budget");
        }
        sum += v;
    }
    return sum;
}

} // namespace

FileCase file_budget_hotcold(std::string name, std::shared_ptr<TestFile> file, faultline::Config config,
    size_t region_bytes, size_t reads)
{
    region_bytes = std::min(region_bytes, file->bytes()) / page_size() * page_size();
    auto order = std::make_shared<std::vector<uint32_t>>(hot_cold_reads(region_bytes / page_size(), reads));
    config.memory_budget = region_bytes / 4;
    faultline::Config fifo = config;
    config.eviction_policy = faultline::EvictionPolicy::Clock;
    fifo.eviction_policy = faultline::EvictionPolicy::Fifo;
    const Prepare prepare { .cold = true };
    auto clock_side = std::make_unique<FileRegionMapper>(file, config, prepare);
    auto fifo_side = std::make_unique<FileRegionMapper>(file, fifo, prepare, "faultline-fifo");
    FileCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ns/read";
    w.bytes = region_bytes;
    w.units = order->size();
    auto timed = [file, order](char* base) {
        const uint64_t t0 = now_ns();
        (void)read_and_check(*file, base, *order, false);
        return now_ns() - t0;
    };
    w.run = timed;
    w.baseline_run = timed;
    // The check re-reads the sequence (untimed) with every byte compared:
    // pages evicted and read again must come back as the file has them.
    auto verify = [file, order, budget = config.memory_budget](const char* base, const FileRegionMapper& m) {
        (void)read_and_check(*file, base, *order, true);
        const faultline::RegionStats s = m.stats(base);
        if (s.evictions_clean == 0)
            fail("file_budget_hotcold: nothing was evicted; the budget did not apply");
        if (s.cached_pages * page_size() > budget + 4096 * page_size())
            fail("file_budget_hotcold: " + std::to_string(s.cached_pages) + " pages cached, over the budget");
    };
    w.verify = [verify, m = clock_side.get()](const char* base) { verify(base, *m); };
    w.baseline_verify = [verify, m = fifo_side.get()](const char* base) { verify(base, *m); };
    c.faultline = std::move(clock_side);
    c.baseline = std::move(fifo_side);
    return c;
}

} // namespace bench
