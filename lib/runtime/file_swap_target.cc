#include "runtime/file_swap_target.h"

#include "os/fault_injection.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <vector>

namespace faultline {

namespace {

// The evictor's batches are at most this many writes in flight at once.
constexpr unsigned kRingEntries = 64;

int open_in_directory(const std::string& dir) noexcept
{
    int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT))
        return fd >= 0 ? fd : -errno;
    // No O_TMPFILE on this filesystem: a named file, unlinked at once.
    std::string name = dir + "/faultline-swap-XXXXXX";
    fd = mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(name.c_str());
    return fd;
}

} // namespace

Result<std::unique_ptr<FileSwapTarget>> FileSwapTarget::create(const std::string& path, size_t page_size, bool io_uring,
    uint64_t min_bytes)
{
    std::string where = path;
    if (where.empty()) {
        const char* tmp = getenv("TMPDIR");
        where = tmp && *tmp ? tmp : "/tmp";
    }
    struct stat st {};
    int fd;
    if (stat(where.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        fd = open_in_directory(where);
    } else {
        // A file the runtime creates and owns: never someone's existing file.
        fd = open(where.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        fd = fd >= 0 ? fd : -errno;
        if (fd >= 0)
            unlink(where.c_str());
    }
    if (fd < 0)
        return failf(-fd, "cannot create the swap file in %s: %s", where.c_str(), strerror(-fd));
    struct statvfs vfs {};
    if (fstatvfs(fd, &vfs) == 0 && uint64_t(vfs.f_bavail) * vfs.f_frsize < min_bytes) {
        close(fd);
        return failf(ENOSPC, "the swap file's filesystem (%s) has less than %llu bytes free", where.c_str(),
            (unsigned long long)min_bytes);
    }
    std::unique_ptr<io::Ring> ring;
    if (io_uring) {
        auto r = io::Ring::create(kRingEntries);
        if (r)
            ring = std::move(*r);
    }
    auto* target = new (std::nothrow) FileSwapTarget(fd, page_size, std::move(ring));
    if (!target) {
        close(fd);
        return fail(ENOMEM, "out of memory for the swap file");
    }
    return std::unique_ptr<FileSwapTarget>(target);
}

FileSwapTarget::~FileSwapTarget() { close(fd_); }

bool FileSwapTarget::read(uint32_t slot, void* buffer, io::Operation* op, memory::IoPort* io) noexcept
{
    return io->read(fd_, buffer, page_, uint64_t(slot) * page_, op);
}

void FileSwapTarget::write(Write* writes, size_t count) noexcept
{
    struct WriteOp {
        io::Operation op;
        int* result;
    };
    auto done = [](io::Operation* op, int32_t result) noexcept {
        auto* w = reinterpret_cast<WriteOp*>(op);
        *w->result = result;
    };
    std::vector<WriteOp> ops(ring_ ? count : 0);
    for (size_t i = 0; i < count; ++i) {
        Write& w = writes[i];
        const uint64_t offset = uint64_t(w.slot) * page_;
        if (int injected = os::FaultInjection::take(os::InjectOp::FileWrite, uintptr_t(offset))) {
            w.result = -injected;
            continue;
        }
        if (int ms = os::FaultInjection::take(os::InjectOp::WriteDelay, uintptr_t(offset)))
            usleep(useconds_t(ms) * 1000);
        size_t bytes = page_;
        if (int cut = os::FaultInjection::take(os::InjectOp::FileWriteShort, uintptr_t(offset)))
            bytes -= std::min(bytes - 1, size_t(cut));
        if (ring_) {
            ops[i] = { { done }, &w.result };
            w.result = -EINPROGRESS;
            while (!ring_->write(fd_, w.data, uint32_t(bytes), offset, &ops[i].op))
                if (ring_->drain() < 0)
                    break;
            continue;
        }
        ssize_t n;
        do
            n = pwrite(fd_, w.data, bytes, off_t(offset));
        while (n < 0 && errno == EINTR);
        w.result = n < 0 ? -errno : int(n);
    }
    if (ring_ && ring_->drain() < 0)
        for (size_t i = 0; i < count; ++i)
            if (writes[i].result == -EINPROGRESS)
                writes[i].result = -EIO;
    // A short write (the filesystem filled up mid-page) is a failure.
    for (size_t i = 0; i < count; ++i)
        if (writes[i].result > 0)
            writes[i].result = writes[i].result == int(page_) ? 0 : -ENOSPC;
}

} // namespace faultline
