// generated_store — a page store whose pages are computed on first touch,
// with the pages the program writes kept in an overlay: a 16 GiB table that
// costs memory only for what is read (and the budget bounds that) and for
// what is written.
//
//   ./build/examples/faultline-generated-store [LOOKUPS]
//
// Copy this to serve anything that can be computed or fetched by offset — a
// procedurally generated data set, a remote object, a decompressed block:
// faultline::Store (faultline/store.h) is four methods. What makes a store
// correct, shown here:
//  - read() runs on the store's own threads, several at once: it must be
//    thread-safe (the overlay is behind a mutex; generation needs no lock).
//  - write() may run beside reads of other pages (sync, unmap, eviction).
//  - size() bounds the region: pages wholly past it raise SIGBUS.
// C programs implement the same with faultline_store_ops and
// faultline_map_store (<faultline/faultline.h>).
#include <faultline/runtime.h>
#include <faultline/store.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <unordered_map>
#include <vector>

namespace {

constexpr size_t kPage = 4096;

// A record of the table: 64 bytes whose contents follow from its index.
struct Record {
    uint64_t index;
    uint64_t key;
    double values[6];
};
static_assert(sizeof(Record) == 64);

Record make_record(uint64_t index)
{
    Record r { index, index * 0x9E3779B97F4A7C15ull, {} };
    uint64_t x = r.key | 1;
    for (double& v : r.values) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v = double(x % 1000000) / 1000.0;
    }
    return r;
}

class GeneratedStore final : public faultline::Store {
public:
    explicit GeneratedStore(uint64_t bytes)
        : bytes_(bytes)
    {
    }

    uint64_t size() noexcept override { return bytes_; }
    bool writable() const noexcept override { return true; }

    int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        if (offset >= bytes_)
            return 0;
        bytes = size_t(std::min<uint64_t>(bytes, bytes_ - offset));
        auto* out = static_cast<char*>(buffer);
        for (size_t done = 0; done < bytes; done += kPage) {
            const uint64_t page = (offset + done) / kPage;
            {
                // A page written earlier comes from the overlay...
                std::lock_guard g(lock_);
                if (auto it = overlay_.find(page); it != overlay_.end()) {
                    memcpy(out + done, it->second.data(), kPage);
                    continue;
                }
            }
            // ...any other is computed (no lock: it depends on the offset only).
            auto* records = reinterpret_cast<Record*>(out + done);
            for (size_t i = 0; i < kPage / sizeof(Record); ++i)
                records[i] = make_record(page * (kPage / sizeof(Record)) + i);
            generated_.fetch_add(1, std::memory_order_relaxed);
        }
        return int64_t(bytes);
    }

    int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        // Whole pages (the runtime writes back dirty pages); kept as they are.
        // A real store would write them somewhere durable; flush() would make
        // that durable.
        try {
            std::lock_guard g(lock_);
            for (size_t done = 0; done < bytes; done += kPage) {
                auto& page = overlay_[(offset + done) / kPage];
                page.resize(kPage);
                memcpy(page.data(), static_cast<const char*>(buffer) + done, std::min(kPage, bytes - done));
            }
        } catch (const std::bad_alloc&) {
            return -ENOMEM; // the pages stay dirty; sync reports ENOMEM
        }
        return int64_t(bytes);
    }

    uint64_t pages_generated() const { return generated_.load(); }
    size_t pages_written()
    {
        std::lock_guard g(lock_);
        return overlay_.size();
    }

private:
    const uint64_t bytes_;
    std::atomic<uint64_t> generated_ { 0 };
    std::mutex lock_;
    std::unordered_map<uint64_t, std::vector<char>> overlay_;
};

} // namespace

int main(int argc, char** argv)
{
    const uint64_t lookups = argc > 1 ? strtoull(argv[1], nullptr, 10) : 50000;
    const uint64_t table_bytes = uint64_t(16) << 30;
    const uint64_t records = table_bytes / sizeof(Record);

    // 64 MiB of generated pages may stay resident; older ones are dropped
    // (clean) or written to the overlay first (dirty), and computed or read
    // back again on their next touch.
    auto rt = faultline::Runtime::create({ .memory_budget = 64 << 20 });
    if (!rt) {
        fprintf(stderr, "%s\n", rt.error().message());
        return 1;
    }
    auto store = std::make_shared<GeneratedStore>(table_bytes);
    auto mapped = (*rt)->map_store(store, { .length = table_bytes, .access = faultline::Access::ReadWrite,
        .name = "generated-table" });
    if (!mapped) {
        fprintf(stderr, "map_store: %s\n", mapped.error().message());
        return 1;
    }
    auto* table = static_cast<Record*>(*mapped);

    // Random lookups, each checked against the generator; every 1000th one
    // updates its record.
    std::mt19937_64 rng(42);
    uint64_t wrong = 0, updated = 0;
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t n = 0; n < lookups; ++n) {
        const uint64_t i = rng() % records;
        Record& r = table[i];
        const Record want = make_record(i);
        if (r.index != i || (r.key != want.key && r.key != ~want.key))
            ++wrong;
        if (n % 1000 == 0 && r.key == want.key) {
            r.key = ~want.key;
            ++updated;
        }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    if (auto synced = (*rt)->sync(table, table_bytes); !synced)
        fprintf(stderr, "sync: %s\n", synced.error().message());
    auto st = (*rt)->region_stats(table);
    printf("%" PRIu64 " lookups in %.2f s (%.0f ns each), %" PRIu64 " wrong\n", lookups, seconds,
        seconds * 1e9 / double(lookups), wrong);
    printf("store: %" PRIu64 " pages generated, %zu pages in the overlay (%" PRIu64 " records updated)\n",
        store->pages_generated(), store->pages_written(), updated);
    if (st)
        printf("region: %zu KiB resident of a %" PRIu64 " GiB table, %" PRIu64 " faults served from the store\n",
            st->amount_resident >> 10, table_bytes >> 30, st->inode_faults);
    (void)(*rt)->unmap(table, table_bytes);
    return wrong == 0 ? 0 : 1;
}
