// faultline-file-scan FILE PATTERN — count the occurrences of PATTERN in FILE,
// once through a faultline file region and once through plain mmap(2), and
// print both throughputs and the region's counters.
//
// With no arguments it writes a 256 MiB temporary file of random bytes with
// the pattern planted in it, scans that, and removes it.
//
// The file region is used exactly like a mapping: map_file() returns an
// address, and every page of the file appears there the first time it is
// touched (faultline reads it from the file, with io_uring where it can, and
// maps it).
#include <faultline/runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

// Occurrences of `pattern` in [data, data+size), overlapping ones included.
size_t count_matches(const char* data, size_t size, const std::string& pattern)
{
    size_t n = 0;
    const char* p = data;
    const char* end = data + size;
    while (const void* hit = memmem(p, size_t(end - p), pattern.data(), pattern.size())) {
        ++n;
        p = static_cast<const char*>(hit) + 1;
    }
    return n;
}

// Both scans should read the file from disk, or the second one would be
// timing memory. POSIX_FADV_DONTNEED drops the kernel's cached pages of the
// file, but only clean ones: fdatasync first writes back any dirty ones.
void drop_page_cache(int fd)
{
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

double seconds_since(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The demo's file: random bytes with `pattern` planted `count` times, evenly
// spaced (so the plants never overlap). Returns an open descriptor.
int make_demo_file(size_t size, const std::string& pattern, size_t count)
{
    const char* tmpdir = getenv("TMPDIR");
    std::string path = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/faultline-file-scan-XXXXXX";
    int fd = mkstemp(path.data());
    if (fd < 0) {
        perror("mkstemp");
        exit(1);
    }
    // Unlinked at once: the descriptor keeps the file alive until we exit,
    // and nothing is left behind even if the scan crashes.
    unlink(path.c_str());
    std::printf("demo: writing %zu MiB of random bytes with \"%s\" planted %zu times to %s (removed at exit)\n",
        size >> 20, pattern.c_str(), count, path.c_str());
    std::vector<char> block(size_t(1) << 20);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t off = 0; off < size; off += block.size()) {
        for (size_t i = 0; i < block.size(); i += 8) { // xorshift64: fast, and random enough
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            memcpy(&block[i], &x, 8);
        }
        if (pwrite(fd, block.data(), block.size(), off_t(off)) != ssize_t(block.size())) {
            perror("writing the demo file");
            exit(1);
        }
    }
    for (size_t i = 0; i < count; ++i)
        (void)!pwrite(fd, pattern.data(), pattern.size(), off_t(i * (size / count) + i % 4093));
    return fd;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 1 && argc != 3) {
        std::fprintf(stderr, "usage: faultline-file-scan [FILE PATTERN]\n");
        return 2;
    }
    const std::string pattern = argc == 3 ? argv[2] : "faultline";
    const size_t planted = 1000;
    const int fd = argc == 3 ? open(argv[1], O_RDONLY | O_CLOEXEC) : make_demo_file(size_t(256) << 20, pattern, planted);
    if (fd < 0) {
        std::perror(argv[1]);
        return 1;
    }
    struct stat st {};
    fstat(fd, &st);
    const size_t size = size_t(st.st_size);
    if (size == 0 || pattern.empty()) {
        std::fprintf(stderr, "faultline-file-scan: nothing to scan (empty file or pattern)\n");
        return 1;
    }

    // 1. Through faultline. A shared read-only file region: the file's own
    //    bytes, as mmap(MAP_SHARED, PROT_READ) would show them.
    auto runtime = faultline::Runtime::create();
    if (!runtime) {
        std::fprintf(stderr, "faultline: %s\n", runtime.error().message());
        return 1;
    }
    auto& rt = **runtime;
    drop_page_cache(fd);
    auto region = rt.map_file(fd, { .length = size, .access = faultline::Access::Read,
                                      .sharing = faultline::Sharing::Shared, .name = "file-scan" });
    if (!region) {
        std::fprintf(stderr, "map_file: %s\n", region.error().message());
        return 1;
    }
    auto start = std::chrono::steady_clock::now();
    const size_t faultline_matches = count_matches(static_cast<const char*>(*region), size, pattern);
    const double faultline_s = seconds_since(start);
    // Counters of the region (and of the runtime's cache of the file):
    // how many faults went to the file, and how much readahead read for
    // them that the scan then used.
    const faultline::RegionStats s = rt.region_stats(*region).value();
    // Unmapping the last region of a file frees the runtime's cache of it.
    (void)rt.unmap(*region, size);

    // 2. The same scan through the kernel's own mapping, also cold.
    drop_page_cache(fd);
    void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        std::perror("mmap");
        return 1;
    }
    start = std::chrono::steady_clock::now();
    const size_t mmap_matches = count_matches(static_cast<const char*>(map), size, pattern);
    const double mmap_s = seconds_since(start);
    munmap(map, size);
    close(fd);

    std::printf("pattern \"%s\" in %zu MiB\n", pattern.c_str(), size >> 20);
    std::printf("  faultline region: %8zu matches  %8.1f MB/s\n", faultline_matches, double(size) / faultline_s / 1e6);
    std::printf("  mmap(2):          %8zu matches  %8.1f MB/s\n", mmap_matches, double(size) / mmap_s / 1e6);
    std::printf("  region counters: inode_faults=%llu file_bytes_read=%llu readahead_pages=%llu readahead_used=%llu\n",
        (unsigned long long)s.inode_faults, (unsigned long long)s.file_bytes_read,
        (unsigned long long)s.readahead_pages, (unsigned long long)s.readahead_used);
    if (faultline_matches != mmap_matches) {
        std::fprintf(stderr, "faultline-file-scan: the two scans disagree\n");
        return 1;
    }
    if (argc == 1 && faultline_matches != planted) {
        std::fprintf(stderr, "faultline-file-scan: expected the %zu planted matches\n", planted);
        return 1;
    }
    return 0;
}
