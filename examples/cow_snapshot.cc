// faultline-cow-snapshot [RECORDS] [FILE]: an in-memory table that writer
// threads keep updating while a snapshot of it is written to a file.
//
// The table lives in a clonable region (RegionFlags::Clonable). snapshot()
// gives a read-only, point-in-time view of it in O(1): the writers go on at
// full speed (each first write to a page after the snapshot costs one
// copy-on-write, as after fork()), while another thread saves the snapshot.
// The file is then checked against the snapshot byte for byte, and the table
// is rolled back to it. Exits non-zero if anything differs.
#include <faultline/runtime.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

// One record: a key, how often it was updated, and a payload whose bytes
// all equal the low byte of the version (so a torn record is visible).
struct Record {
    uint64_t key;
    uint64_t version;
    unsigned char payload[48];
};

uint64_t checksum(const unsigned char* p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; ++i)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

bool write_all(int fd, const void* data, size_t n)
{
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= size_t(w);
    }
    return true;
}

} // namespace

int main(int argc, char** argv)
{
    const size_t records = argc > 1 ? size_t(strtoull(argv[1], nullptr, 10)) : 1u << 20; // 64 MiB
    const std::string path = argc > 2 ? argv[2] : "/tmp/faultline-cow-snapshot.bin";
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    const size_t bytes = (records * sizeof(Record) + page - 1) / page * page;

    auto rt = faultline::Runtime::create();
    if (!rt) {
        fprintf(stderr, "faultline: %s\n", rt.error().message());
        return 1;
    }
    auto mapped = (*rt)->map_anonymous({ .size = bytes, .flags = faultline::RegionFlags::Clonable, .name = "table" });
    if (!mapped) {
        fprintf(stderr, "map: %s\n", mapped.error().message());
        return 1;
    }
    auto* table = static_cast<Record*>(*mapped);
    for (size_t i = 0; i < records; ++i) {
        table[i].key = i;
        table[i].version = 0;
        memset(table[i].payload, 0, sizeof table[i].payload);
    }

    // Writers: update random records for as long as the save runs. Each
    // writer owns the records whose index is its number modulo 4, so no
    // record is ever written by two threads at once.
    std::atomic<bool> stop { false };
    std::atomic<uint64_t> updates { 0 };
    std::vector<std::thread> writers;
    for (unsigned t = 0; t < 4; ++t)
        writers.emplace_back([&, t] {
            std::mt19937_64 rng(t + 1);
            uint64_t n = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                const size_t mine = (records + 3 - t) / 4; // records t, t+4, t+8, ...
                if (mine == 0)
                    break;
                Record& r = table[(rng() % mine) * 4 + t];
                const uint64_t v = r.version + 1;
                memset(r.payload, int(v & 0xff), sizeof r.payload);
                r.version = v;
                ++n;
            }
            updates += n;
        });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));

    const auto t0 = std::chrono::steady_clock::now();
    auto snap = (*rt)->snapshot(table, "table-snapshot");
    const auto t1 = std::chrono::steady_clock::now();
    if (!snap) {
        fprintf(stderr, "snapshot: %s\n", snap.error().message());
        return 1;
    }
    const auto* frozen = static_cast<const unsigned char*>(*snap);
    const uint64_t sum_before = checksum(frozen, bytes);

    // Save the snapshot while the writers keep going.
    int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 || !write_all(fd, frozen, bytes) || fsync(fd) != 0) {
        perror(path.c_str());
        return 1;
    }
    close(fd);
    const auto t2 = std::chrono::steady_clock::now();
    stop = true;
    for (auto& w : writers)
        w.join();

    auto table_stats = (*rt)->region_stats(table);
    auto snap_stats = (*rt)->region_stats(*snap);

    // The file must be the snapshot, and the snapshot must not have moved.
    bool ok = checksum(frozen, bytes) == sum_before;
    std::vector<unsigned char> back(bytes);
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ok = ok && fd >= 0 && pread(fd, back.data(), bytes, 0) == ssize_t(bytes) && memcmp(back.data(), frozen, bytes) == 0;
    if (fd >= 0)
        close(fd);
    // Rolled back, the table is the snapshot again.
    auto rolled = (*rt)->rollback(table, *snap);
    ok = ok && rolled && memcmp(table, frozen, bytes) == 0;

    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    printf("table: %zu records, %zu MiB, %" PRIu64 " updates by 4 writers during the save\n", records, bytes >> 20, updates.load());
    printf("snapshot: %.2f ms; saved to %s in %.1f ms while the writers ran\n", ms(t0, t1), path.c_str(), ms(t1, t2));
    if (table_stats && snap_stats)
        printf("pages: %zu copied by the writers' first writes, %zu still shared with the snapshot\n",
            table_stats->cow_private_pages, snap_stats->cow_shared_pages);
    printf("file == snapshot: %s; rollback: %s\n", ok ? "yes" : "NO", rolled ? "done" : rolled.error().message());
    unlink(path.c_str());
    return ok ? 0 : 1;
}
