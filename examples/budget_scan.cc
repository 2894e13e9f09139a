// faultline-budget-scan [FILE [BUDGET_MIB]] — random reads over a file four
// times larger than the memory budget, 90% of them on a hot 10% of its
// pages, once with each eviction policy; prints, as it runs, the bytes
// resident against the budget, the hit rate (reads that found their page in
// memory) and the evictions.
//
// With no arguments it writes a 256 MiB temporary file and uses a 64 MiB
// budget. The budget is a runtime setting (Config::memory_budget); regions
// are mapped as usual and the runtime keeps their pages under it, writing
// dirty pages back before it drops them.
#include <faultline/runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr size_t kPage = 4096;

int make_demo_file(size_t bytes)
{
    char path[] = "/tmp/faultline-budget-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    std::vector<char> chunk(1 << 20);
    std::mt19937_64 rng(42);
    for (size_t off = 0; off < bytes; off += chunk.size()) {
        for (auto& c : chunk)
            c = char(rng());
        if (pwrite(fd, chunk.data(), chunk.size(), off_t(off)) != ssize_t(chunk.size())) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

bool scan(int fd, size_t file_bytes, size_t budget, faultline::EvictionPolicy policy)
{
    faultline::Config config;
    config.memory_budget = budget;
    config.eviction_policy = policy;
    auto rt = faultline::Runtime::create(config);
    if (!rt) {
        std::fprintf(stderr, "runtime: %s\n", rt.error().message());
        return false;
    }
    // Cold: the reads below go to the disk, not to the kernel's cache.
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    auto region = (*rt)->map_file(fd, { .length = file_bytes, .name = "budget-scan" });
    if (!region) {
        std::fprintf(stderr, "map_file: %s\n", region.error().message());
        return false;
    }
    const auto* p = static_cast<const volatile char*>(*region);
    const size_t pages = file_bytes / kPage;
    const size_t hot = pages / 10;
    std::mt19937_64 rng(7);
    std::printf("%s policy, budget %zu MiB, file %zu MiB\n", policy == faultline::EvictionPolicy::Clock ? "Clock" : "FIFO",
        budget >> 20, file_bytes >> 20);
    std::printf("  %8s %12s %9s %12s %10s %10s %9s\n", "reads", "resident MiB", "hit rate", "pages read", "evicted",
        "written", "ms");
    const size_t phase = 50000;
    uint64_t read_before = 0, faults_before = 0;
    unsigned sum = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int round = 1; round <= 8; ++round) {
        for (size_t i = 0; i < phase; ++i) {
            const size_t page = rng() % 10 < 9 ? (rng() % hot) * 10 % pages : rng() % pages;
            sum += p[page * kPage + i % kPage];
        }
        auto s = (*rt)->region_stats(*region);
        auto st = (*rt)->stats();
        if (!s)
            return false;
        // A hit is a read that took no fault at all; a miss waited for its
        // page (from the file, or — Clock's price for learning what is hot —
        // a page the evictor had unmapped and kept). Pages read from the
        // file include readahead.
        const uint64_t faults = s->inode_faults - faults_before;
        faults_before = s->inode_faults;
        const uint64_t read_pages = s->file_bytes_read / kPage - read_before;
        read_before = s->file_bytes_read / kPage;
        const double hit = 100.0 * (1.0 - std::min<double>(1.0, double(faults) / double(phase)));
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::printf("  %8zu %12.1f %8.1f%% %12llu %10llu %10llu %9.0f\n", round * phase,
            double(st.budget_resident_bytes) / (1 << 20), hit, (unsigned long long)read_pages,
            (unsigned long long)(st.evictions_clean + st.evictions_dirty),
            (unsigned long long)st.evictions_dirty, ms);
    }
    (void)(*rt)->unmap(*region, file_bytes);
    return sum != 1; // keep the reads
}

} // namespace

int main(int argc, char** argv)
{
    size_t budget = size_t(64) << 20;
    if (argc > 2)
        budget = size_t(std::strtoull(argv[2], nullptr, 10)) << 20;
    int fd;
    size_t bytes;
    if (argc > 1) {
        fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        struct stat st {};
        if (fd < 0 || fstat(fd, &st) != 0) {
            std::perror(argv[1]);
            return 1;
        }
        bytes = size_t(st.st_size) / kPage * kPage;
    } else {
        bytes = 4 * budget;
        fd = make_demo_file(bytes);
        if (fd < 0) {
            std::perror("creating the demo file");
            return 1;
        }
    }
    if (bytes < 2 * budget)
        std::fprintf(stderr, "note: the file is smaller than twice the budget; little will be evicted\n");
    bool ok = scan(fd, bytes, budget, faultline::EvictionPolicy::Clock)
        && scan(fd, bytes, budget, faultline::EvictionPolicy::Fifo);
    close(fd);
    return ok ? 0 : 1;
}
