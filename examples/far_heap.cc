// faultline-far-heap [SEED [BUDGET_MIB]] — a program whose heap is four
// times its memory budget, the rest of it in a Redis Cluster: far memory
// (docs/far-memory.md) with nothing but a Config.
//
// SEED is any node of the cluster (host:port, default 127.0.0.1:7000), or a
// whole redis:// URL (a single server works too). The program fills a heap
// of 4 x BUDGET_MIB (default 16) with records, then works it: 90% of its
// reads and writes on a hot 10%, the rest anywhere. Cold pages go to Redis
// and come back on touch; every record is checked. It prints where its
// pages are — resident in this process, or held in Redis — as it goes, and
// the runtime's JSON report of the heap at the end. Exit status 0 when every
// record read back as written, 1 when the runtime could not start (no
// userfaultfd, cluster unreachable: the message says which), 2 on a wrong
// record.
//
// To try it: a local cluster (six redis-servers in cluster mode on ports
// 7000-7005, `redis-cli --cluster create ... --cluster-replicas 1`), then
//   ./build/examples/faultline-far-heap 127.0.0.1:7000
#include <faultline/runtime.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr size_t kPage = 4096;

// A record: 64 bytes, its own index and a version, so that any page that
// came back from Redis can be checked.
struct Record {
    uint64_t index;
    uint64_t version;
    uint64_t payload[6];
};

void write_record(Record& r, uint64_t index, uint64_t version)
{
    r.index = index;
    r.version = version;
    for (int i = 0; i < 6; ++i)
        r.payload[i] = index * 0x9E3779B97F4A7C15ull + version * 31 + uint64_t(i);
}

bool record_ok(const Record& r, uint64_t index, uint64_t version)
{
    Record want;
    write_record(want, index, version);
    return memcmp(&r, &want, sizeof want) == 0;
}

// "In Redis" counts the swap slots in use: a page read back keeps its copy
// there until it is written again (so it can be dropped without a write),
// which is why resident + in Redis can exceed the heap.
void where(const char* when, faultline::Runtime& rt, void* heap, size_t heap_bytes)
{
    const auto s = rt.stats();
    const auto region = rt.region_stats(heap);
    const size_t resident = region ? region->amount_resident : 0;
    printf("%-10s heap %zu MiB: resident %zu MiB (%.0f%%), in Redis %llu MiB (%llu pages); swapped out %llu, "
           "back in %llu, errors %llu/%llu\n",
        when, heap_bytes >> 20, resident >> 20, 100.0 * double(resident) / double(heap_bytes),
        (unsigned long long)(s.swap_slots_used * kPage >> 20), (unsigned long long)s.swap_slots_used,
        (unsigned long long)s.swapped_out, (unsigned long long)s.swapped_in, (unsigned long long)s.swap_write_errors,
        (unsigned long long)s.swap_read_errors);
}

} // namespace

int main(int argc, char** argv)
{
    const std::string seed = argc > 1 ? argv[1] : "127.0.0.1:7000";
    const size_t budget_mib = argc > 2 ? size_t(strtoul(argv[2], nullptr, 10)) : 16;
    if (budget_mib == 0) {
        fprintf(stderr, "usage: %s [SEED [BUDGET_MIB]]\n", argv[0]);
        return 1;
    }
    faultline::Config config;
    config.memory_budget = budget_mib << 20;
    // Any node is a seed: the runtime asks it for the cluster's slot map.
    config.swap_path = seed.rfind("redis://", 0) == 0 ? seed : "redis://" + seed;
    auto created = faultline::Runtime::create(config);
    if (!created) {
        fprintf(stderr, "faultline: %s\n", created.error().message());
        return 1;
    }
    auto& rt = **created;
    if (!rt.stats().swap_enabled) {
        fprintf(stderr, "faultline: no swap pager here (it needs write-protect faults on anonymous memory)\n");
        return 1;
    }
    const size_t heap_bytes = 4 * config.memory_budget;
    auto mapped = rt.map_anonymous({ .size = heap_bytes, .name = "far-heap" });
    if (!mapped) {
        fprintf(stderr, "faultline: %s\n", mapped.error().message());
        return 1;
    }
    auto* records = static_cast<Record*>(*mapped);
    const size_t count = heap_bytes / sizeof(Record);
    std::vector<uint32_t> version(count, 0);

    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < count; ++i)
        write_record(records[i], i, 0);
    where("filled", rt, records, heap_bytes);

    // Hot/cold: 90% of the work on the first 10% of the records.
    std::mt19937_64 rng(7);
    const size_t hot = count / 10, ops = count;
    size_t bad = 0;
    for (size_t n = 0; n < ops; ++n) {
        const size_t i = rng() % 10 < 9 ? rng() % hot : rng() % count;
        if (!record_ok(records[i], i, version[i]))
            ++bad;
        if (n % 4 == 0)
            write_record(records[i], i, ++version[i]);
        if (n == ops / 2)
            where("half-way", rt, records, heap_bytes);
    }
    // And a last pass over everything: every cold page comes back from Redis.
    for (size_t i = 0; i < count; ++i)
        bad += !record_ok(records[i], i, version[i]);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    where("done", rt, records, heap_bytes);
    printf("%zu records, %zu operations in %.2f s; wrong records: %zu\n", count, ops + 2 * count, secs, bad);
    const std::string json = rt.to_json();
    printf("runtime report: %.*s%s\n", int(json.size() < 600 ? json.size() : 600), json.c_str(),
        json.size() < 600 ? "" : " ...");
    return bad ? 2 : 0;
}
