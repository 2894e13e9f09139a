// tools/stress/files.cc — creating, reading and describing the slots' files
// (see files.h).
#include "files.h"

#include "util.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stress {

namespace {

[[noreturn]] void fatal(const char* what, const std::string& path)
{
    std::fprintf(stderr, "stress: FAIL: %s %s: %s\n", what, path.c_str(), std::strerror(errno));
    std::exit(1);
}

} // namespace

FileSet::FileSet(unsigned slots, unsigned pages, size_t page_size)
    : page_size_(page_size)
    , shared_(slots)
    , stores_(slots)
{
    // A descriptor per slot here, and the runtime keeps two per file it
    // caches (its own and the memfd): raise the soft limit as far as allowed
    // so that --slots 1024 does not run out.
    rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }

    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/faultline-stress-XXXXXX";
    if (!mkdtemp(dir.data()))
        fatal("cannot create a temporary directory", dir);
    dir_fd_ = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd_ < 0)
        fatal("cannot open", dir);

    const size_t words = page_size / sizeof(uint64_t);
    std::vector<uint64_t> buf(size_t(pages) * words);
    for (unsigned s = 0; s < slots; ++s) {
        const std::string path = dir + "/slot-" + std::to_string(s);
        int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            fatal("cannot create", path);
        for (unsigned p = 0; p < pages; ++p)
            for (size_t i = 0; i < words; ++i)
                buf[size_t(p) * words + i] = initial_file_value(s, p, i);
        const size_t bytes = buf.size() * sizeof(uint64_t);
        if (pwrite(fd, buf.data(), bytes, 0) != ssize_t(bytes))
            fatal("cannot write", path);
        if (s == 0) {
            int direct = open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
            direct_ok_ = direct >= 0;
            if (direct >= 0)
                close(direct);
        }
        if (unlink(path.c_str()) != 0)
            fatal("cannot unlink", path);
        fds_.push_back(fd);
    }
    // The descriptor still names a directory once it is removed.
    if (rmdir(dir.c_str()) != 0)
        fatal("cannot remove", dir);
}

FileSet::~FileSet()
{
    for (int fd : fds_)
        close(fd);
    if (dir_fd_ >= 0)
        close(dir_fd_);
}

std::string FileSet::path(unsigned slot) const { return "/proc/self/fd/" + std::to_string(fds_[slot]); }

int FileSet::reopen(unsigned slot, int flags) const
{
    int fd = open(path(slot).c_str(), flags | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

namespace {

// The slot's file as a user store: what a program bringing its own storage
// would write, and the path a store region's faults take (the store's
// threads, never a handler).
class SlotStore final : public faultline::Store {
public:
    SlotStore(int fd, uint64_t size)
        : fd_(fd)
        , size_(size)
    {
    }
    uint64_t size() noexcept override { return size_; }
    bool writable() const noexcept override { return true; }
    int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        return transfer(false, buffer, bytes, offset);
    }
    int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept override
    {
        return transfer(true, const_cast<void*>(buffer), bytes, offset);
    }
    int flush() noexcept override { return fdatasync(fd_) == 0 ? 0 : -errno; }

private:
    int64_t transfer(bool write, void* buffer, size_t bytes, uint64_t offset) noexcept
    {
        size_t done = 0;
        while (done < bytes) {
            ssize_t n = write ? pwrite(fd_, static_cast<char*>(buffer) + done, bytes - done, off_t(offset + done))
                              : pread(fd_, static_cast<char*>(buffer) + done, bytes - done, off_t(offset + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return done ? int64_t(done) : -errno;
            if (n == 0)
                break;
            done += size_t(n);
        }
        return int64_t(done);
    }
    int fd_;
    uint64_t size_;
};

} // namespace

std::shared_ptr<faultline::Store> FileSet::store(unsigned slot)
{
    // Only the mutator holding the slot gets here: no lock.
    if (!stores_[slot]) {
        struct stat st {};
        (void)fstat(fds_[slot], &st);
        stores_[slot] = std::make_shared<SlotStore>(fds_[slot], uint64_t(st.st_size));
    }
    return stores_[slot];
}

bool FileSet::read_page(unsigned slot, unsigned page, uint64_t* out) const
{
    const ssize_t n = pread(fds_[slot], out, page_size_, off_t(page) * off_t(page_size_));
    if (n != ssize_t(page_size_)) {
        failure("pread of slot %u's file, page %u, returned %zd (%s)", slot, page, n, n < 0 ? std::strerror(errno) : "short");
        return false;
    }
    return true;
}

} // namespace stress
