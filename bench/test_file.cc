// bench/test_file.cc — creating, predicting and un-caching the test file.
#include "test_file.h"

#include "bench.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <vector>

namespace bench {

namespace {

constexpr size_t kChunk = size_t(1) << 20; // the file is written 1 MiB at a time

std::string errno_text() { return strerror(errno); }

// splitmix64's finaliser: every 8-byte word of the file is mix(seed + index).
uint64_t mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

} // namespace

TestFile::TestFile(size_t bytes) : bytes_(bytes), seed_(std::random_device {}() ^ now_ns())
{
    const char* env = getenv("TMPDIR");
    std::string tmpl = std::string(env && *env ? env : "/tmp") + "/faultline-bench-XXXXXX";
    if (!mkdtemp(tmpl.data()))
        fail("cannot create a directory for the test file (" + tmpl + "): " + errno_text());
    dir_ = tmpl.substr(0, tmpl.rfind('/'));
    const std::string path = tmpl + "/file";
    write_fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    read_fd_ = write_fd_ < 0 ? -1 : open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const int saved = errno;
    // Unlinked at once: the open descriptors keep it alive until exit.
    unlink(path.c_str());
    rmdir(tmpl.c_str());
    try {
        if (write_fd_ < 0 || read_fd_ < 0)
            fail("cannot create the test file " + path + ": " + strerror(saved));
        std::vector<char> chunk(kChunk);
        for (size_t off = 0; off < bytes_; off += kChunk) {
            const size_t n = std::min(kChunk, bytes_ - off);
            expected(off, n, chunk.data());
            if (pwrite(write_fd_, chunk.data(), n, off_t(off)) != ssize_t(n))
                fail("cannot write the test file in " + dir_ + ": " + errno_text());
        }
        drop_cache();
    } catch (...) {
        // The destructor does not run for a constructor that throws; the
        // descriptors are all that keeps the unlinked file's blocks.
        close(read_fd_);
        close(write_fd_);
        throw;
    }
}

TestFile::~TestFile()
{
    close(read_fd_);
    close(write_fd_);
}

size_t TestFile::pages() const { return bytes_ / page_size(); }

std::string TestFile::describe() const
{
    struct statfs fs {};
    std::string type = "an unknown file system";
    if (fstatfs(read_fd_, &fs) == 0) {
        switch (uint64_t(fs.f_type)) {
        case 0xEF53: type = "ext4"; break;
        case 0x58465342: type = "xfs"; break;
        case 0x9123683E: type = "btrfs"; break;
        case 0xF2F52010: type = "f2fs"; break;
        case 0x794c7630: type = "overlayfs"; break;
        default: type = "file system type " + std::to_string(uint64_t(fs.f_type)); break;
        }
    }
    return std::to_string(bytes_ >> 20) + " MiB of random bytes on " + type + " (" + dir_ + ")";
}

size_t TestFile::write_offset(size_t page) { return (page * 67) & (page_size() - 1); }

char TestFile::write_value(size_t page, unsigned generation)
{
    // Consecutive generations differ in every page (by 29).
    return char(uint8_t(page * 131 + generation * 29 + 17));
}

void TestFile::expected(size_t offset, size_t len, char* out) const
{
    for (size_t i = 0; i < len; i += 8) {
        const uint64_t word = mix(seed_ + (offset + i) / 8);
        memcpy(out + i, &word, 8);
    }
    if (generation_ == 0)
        return;
    for (size_t page = offset / page_size(); page * page_size() < offset + len; ++page) {
        const size_t at = page * page_size() + write_offset(page);
        if (at >= offset && at < offset + len)
            out[at - offset] = write_value(page, generation_);
    }
}

void TestFile::drop_cache() const
{
    // POSIX_FADV_DONTNEED drops clean pages only: write the dirty ones first.
    if (fdatasync(write_fd_) != 0 || posix_fadvise(write_fd_, 0, 0, POSIX_FADV_DONTNEED) != 0)
        fail("cannot drop the test file's page cache: " + errno_text());
    // A "cold" figure read from memory would look valid and be wrong, so
    // check: a mapping that is never touched shows what is cached.
    void* view = mmap(nullptr, bytes_, PROT_READ, MAP_SHARED, read_fd_, 0);
    if (view == MAP_FAILED)
        fail("mmap of the test file failed: " + errno_text());
    std::vector<unsigned char> resident(pages());
    const int rc = mincore(view, bytes_, resident.data());
    munmap(view, bytes_);
    if (rc != 0)
        fail("mincore failed: " + errno_text());
    const auto cached = std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; });
    if (cached != 0)
        fail(std::to_string(cached) + " of " + std::to_string(pages()) + " pages of the test file stay in memory " +
             "after POSIX_FADV_DONTNEED; is " + dir_ + " on tmpfs? Set TMPDIR to a directory on a disk");
}

} // namespace bench
