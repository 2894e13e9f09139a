// bench/swap_mappers.cc — swap-backed regions, a freshly written file read
// with io_uring, and the kernel's swap under a memory cgroup.
#include "swap_mappers.h"

#include "mappers.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace bench {

namespace {

constexpr size_t MiB = size_t(1) << 20;

std::string errno_text(int e = errno) { return strerror(e); }

// $TMPDIR, else /tmp: where faultline puts its swap file by default.
std::string temp_dir()
{
    const char* env = getenv("TMPDIR");
    return env && *env ? env : "/tmp";
}

// An unlinked file in `dir` (as the runtime's swap file is created).
int open_temp_file(const std::string& dir)
{
    int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    std::string name = dir + "/faultline-bench-XXXXXX";
    fd = mkostemp(name.data(), O_CLOEXEC);
    if (fd >= 0)
        unlink(name.c_str());
    return fd;
}

// Writes `text` to the file `path` (a cgroup or /proc knob); errno on failure.
int write_knob(const std::string& path, const std::string& text)
{
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    const ssize_t n = write(fd, text.data(), text.size());
    const int e = n == ssize_t(text.size()) ? 0 : (n < 0 ? errno : EIO);
    close(fd);
    return e;
}

std::string read_text(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string fs_type(const std::string& path)
{
    struct statfs fs {};
    if (statfs(path.c_str(), &fs) != 0)
        return "an unknown file system";
    switch (uint64_t(fs.f_type)) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    default: return "file system type " + std::to_string(uint64_t(fs.f_type));
    }
}

bool process_alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

// The pid in a name "...faultline-bench-swap-<pid>..." (0 if none).
pid_t owner_pid(const std::string& name, const std::string& prefix)
{
    const size_t at = name.find(prefix);
    if (at == std::string::npos)
        return 0;
    return pid_t(atol(name.c_str() + at + prefix.size()));
}

// Swap files and cgroups a bench killed mid-case (the watchdog's _exit)
// left behind: their owner is gone, so they go too.
void remove_leftovers(const std::string& cgroup_root)
{
    std::istringstream swaps(read_text("/proc/swaps"));
    std::string line;
    while (std::getline(swaps, line)) {
        const std::string path = line.substr(0, line.find_first_of(" \t"));
        const pid_t pid = owner_pid(path, "faultline-bench-swap-");
        if (pid && !process_alive(pid) && swapoff(path.c_str()) == 0)
            unlink(path.c_str());
    }
    if (cgroup_root.empty())
        return;
    if (DIR* d = opendir(cgroup_root.c_str())) {
        while (dirent* e = readdir(d)) {
            const std::string name = e->d_name;
            const pid_t pid = name.rfind("faultline-bench-", 0) == 0 ? owner_pid(name, "faultline-bench-") : 0;
            if (pid && !process_alive(pid))
                rmdir((cgroup_root + "/" + name).c_str());
        }
        closedir(d);
    }
}

struct CgroupMount {
    std::string root;
    bool v2 = false;
};

// The memory controller: cgroup v2 if it has it (it is listed in the root's
// cgroup.controllers), else the v1 memory hierarchy.
CgroupMount find_memory_cgroup()
{
    std::istringstream mounts(read_text("/proc/self/mounts"));
    std::string dev, dir, type, options;
    CgroupMount v1, v2;
    while (mounts >> dev >> dir >> type >> options) {
        std::string rest;
        std::getline(mounts, rest);
        if (type == "cgroup2" && v2.root.empty()) {
            std::istringstream controllers(read_text(dir + "/cgroup.controllers"));
            std::string c;
            while (controllers >> c)
                if (c == "memory")
                    v2 = { dir, true };
        } else if (type == "cgroup" && v1.root.empty()) {
            std::istringstream opts(options);
            std::string opt;
            while (std::getline(opts, opt, ','))
                if (opt == "memory")
                    v1 = { dir, false };
        }
    }
    return v2.root.empty() ? v1 : v2;
}

// The swap header mkswap(8) writes (version 1): the signature at the end of
// the first page, the last usable page after 1 KiB of boot bits.
bool write_swap_header(int fd, size_t bytes)
{
    std::vector<char> page(page_size(), 0);
    const uint32_t version = 1;
    const uint32_t last_page = uint32_t(bytes / page_size() - 1);
    memcpy(page.data() + 1024, &version, 4);
    memcpy(page.data() + 1028, &last_page, 4);
    memcpy(page.data() + page_size() - 10, "SWAPSPACE2", 10);
    return pwrite(fd, page.data(), page.size(), 0) == ssize_t(page.size()) && fsync(fd) == 0;
}

} // namespace

char* SwapHeapMapper::map(size_t bytes, bool)
{
    runtime_ = make_runtime(config_);
    if (!runtime_->stats().swap_enabled)
        fail("the runtime does not swap anonymous memory (it needs write-protect faults on anonymous memory, "
             "Linux 5.7, and a memory budget)");
    auto p = runtime_->map_anonymous({ .size = bytes, .name = "bench-swap" });
    if (!p)
        fail("map_anonymous(" + std::to_string(bytes) + ") failed: " + p.error().message());
    char* base = static_cast<char*>(*p);
    prepare_(*runtime_, base, bytes);
    return base;
}

void SwapHeapMapper::unmap(char* base, size_t bytes)
{
    auto ok = runtime_->unmap(base, bytes);
    runtime_.reset();
    if (!ok)
        fail(std::string("faultline unmap failed: ") + ok.error().message());
}

void wait_for_swap_out(faultline::Runtime& rt, size_t pages)
{
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
        const faultline::RuntimeStats s = rt.stats();
        const size_t budget_pages = s.memory_budget / page_size();
        if (s.swapped_out + budget_pages >= pages && s.budget_resident_bytes <= s.memory_budget)
            return;
        if (std::chrono::steady_clock::now() > deadline)
            fail("the evictor swapped out " + std::to_string(s.swapped_out) + " of " + std::to_string(pages) +
                 " pages in 60 s (" + std::to_string(s.budget_resident_bytes >> 10) + " KiB resident, budget " +
                 std::to_string(s.memory_budget >> 10) + " KiB)");
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

FreshFileReader::FreshFileReader(std::function<void(uint64_t, size_t, size_t, char*)> fill) : fill_(std::move(fill))
{
    // The plain ring of file_mappers.cc's UringReader (and of faultline's
    // own I/O): no SQPOLL, no registered buffers.
    if (int rc = io_uring_queue_init(4, &ring_, 0); rc < 0)
        fail("io_uring_queue_init failed: " + errno_text(-rc));
    buffer_ = static_cast<char*>(aligned_alloc(page_size(), page_size()));
    if (!buffer_) {
        io_uring_queue_exit(&ring_);
        fail("out of memory for the read buffer");
    }
}

FreshFileReader::~FreshFileReader()
{
    if (fd_ >= 0)
        close(fd_);
    io_uring_queue_exit(&ring_);
    free(buffer_);
}

char* FreshFileReader::map(size_t bytes, bool)
{
    fd_ = open_temp_file(temp_dir());
    if (fd_ < 0)
        fail("cannot create a file in " + temp_dir() + ": " + errno_text());
    seed_ = now_ns() * 0x9e3779b97f4a7c15u;
    const size_t chunk_pages = MiB / page_size();
    std::vector<char> chunk(chunk_pages * page_size());
    for (size_t page = 0; page < bytes / page_size(); page += chunk_pages) {
        const size_t n = std::min(chunk_pages, bytes / page_size() - page);
        fill_(seed_, page, n, chunk.data());
        if (pwrite(fd_, chunk.data(), n * page_size(), off_t(page * page_size())) != ssize_t(n * page_size()))
            fail("cannot write the baseline file in " + temp_dir() + ": " + errno_text());
    }
    return buffer_;
}

void FreshFileReader::unmap(char*, size_t)
{
    close(fd_);
    fd_ = -1;
}

const char* FreshFileReader::read(size_t page)
{
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_); // never null: nothing else is queued
    io_uring_prep_read(sqe, fd_, buffer_, unsigned(page_size()), page * page_size());
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc >= 0)
        rc = io_uring_peek_cqe(&ring_, &cqe);
    if (rc < 0 || !cqe)
        fail("io_uring read failed: " + errno_text(-rc));
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    if (res != int(page_size()))
        fail("io_uring read of page " + std::to_string(page) + " returned " + std::to_string(res));
    return buffer_;
}

KernelSwap::KernelSwap(size_t swap_bytes, size_t limit_bytes)
{
    if (geteuid() != 0)
        throw Unavailable("needs root (swapon(2) and a memory cgroup)");
    const CgroupMount cg = find_memory_cgroup();
    if (cg.root.empty())
        throw Unavailable("no memory cgroup controller is mounted");
    remove_leftovers(cg.root);

    const std::string tag = std::to_string(getpid());
    swap_path_ = temp_dir() + "/faultline-bench-swap-" + tag;
    const int fd = open(swap_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        throw Unavailable("cannot create a swap file in " + temp_dir() + ": " + errno_text());
    swap_bytes = (swap_bytes + MiB - 1) / MiB * MiB;
    const bool made = fallocate(fd, 0, 0, off_t(swap_bytes)) == 0 && write_swap_header(fd, swap_bytes);
    const int e = errno;
    close(fd);
    if (!made) {
        unlink(swap_path_.c_str());
        throw Unavailable("cannot allocate a swap file in " + temp_dir() + ": " + errno_text(e));
    }
    // No priority given: the kernel's next negative one, below any swap the
    // machine has (which the child then uses first; there is none here).
    if (swapon(swap_path_.c_str(), 0) != 0) {
        const int err = errno;
        unlink(swap_path_.c_str());
        throw Unavailable("swapon(" + swap_path_ + ") on " + fs_type(temp_dir()) + " failed: " + errno_text(err));
    }
    swapped_on_ = true;

    cgroup_dir_ = cg.root + "/faultline-bench-" + tag;
    auto unavailable = [&](const std::string& what, int err) {
        cleanup(); // the constructor throws: no destructor will run
        throw Unavailable(what + ": " + errno_text(err));
    };
    if (cg.v2) {
        if (int err = write_knob(cg.root + "/cgroup.subtree_control", "+memory"))
            unavailable("cannot enable the memory controller in " + cg.root, err);
    }
    if (mkdir(cgroup_dir_.c_str(), 0755) != 0) {
        const int err = errno;
        cgroup_dir_.clear();
        unavailable("cannot create a cgroup in " + cg.root, err);
    }
    const std::string limit = std::to_string(limit_bytes);
    if (cg.v2) {
        if (int err = write_knob(cgroup_dir_ + "/memory.max", limit))
            unavailable("cannot set memory.max", err);
        (void)write_knob(cgroup_dir_ + "/memory.swap.max", "max");
    } else {
        if (int err = write_knob(cgroup_dir_ + "/memory.limit_in_bytes", limit))
            unavailable("cannot set memory.limit_in_bytes", err);
    }
    procs_ = cgroup_dir_ + "/cgroup.procs";
    description_ = std::string(cg.v2 ? "cgroup v2 memory.max " : "cgroup v1 memory.limit_in_bytes ") +
                   std::to_string(limit_bytes / MiB) + " MiB, a " + std::to_string(swap_bytes / MiB) +
                   " MiB swap file on " + fs_type(temp_dir()) + " (" + temp_dir() + "), vm.swappiness " +
                   read_text("/proc/sys/vm/swappiness").substr(0, 3);
    while (!description_.empty() && (description_.back() == '\n' || description_.back() == ' '))
        description_.pop_back();
}

KernelSwap::~KernelSwap() { cleanup(); }

void KernelSwap::cleanup() noexcept
{
    if (!cgroup_dir_.empty()) {
        // The child is reaped by now; its cgroup may take a moment to empty.
        for (int i = 0; i < 100 && rmdir(cgroup_dir_.c_str()) != 0 && errno == EBUSY; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        cgroup_dir_.clear();
    }
    if (swapped_on_) {
        if (swapoff(swap_path_.c_str()) != 0)
            fprintf(stderr, "faultline-bench: swapoff(%s) failed: %s (swapoff it by hand)\n", swap_path_.c_str(),
                strerror(errno));
        else
            unlink(swap_path_.c_str());
        swapped_on_ = false;
    }
}

std::string KernelSwap::describe() const { return description_; }

KernelSwapMapper::KernelSwapMapper(std::shared_ptr<KernelSwap> swap, std::function<void(char*, size_t)> prepare,
    std::function<uint64_t(char*)> run, std::function<long(const char*)> check)
    : swap_(std::move(swap)), prepare_(std::move(prepare)), run_(std::move(run)), check_(std::move(check))
{
}

KernelSwapMapper::~KernelSwapMapper() { end_child(); }

namespace {

bool read_all(int fd, void* data, size_t n)
{
    char* p = static_cast<char*>(data);
    while (n > 0) {
        const ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= size_t(r);
    }
    return true;
}

bool write_all(int fd, const void* data, size_t n)
{
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = write(fd, p, n);
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

// The child: only system calls and the case's loops (no allocation), since
// it was forked from a process with other threads.
void KernelSwapMapper::child(size_t bytes, int in, int out) noexcept
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char pid[24];
    const int len = snprintf(pid, sizeof pid, "%d\n", int(getpid()));
    const int fd = open(swap_->procs().c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, pid, size_t(len)) != len)
        _exit(10);
    close(fd);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(11);
    // As faultline's regions: small pages (THP would swap 2 MiB at a time).
    (void)madvise(p, bytes, MADV_NOHUGEPAGE);
    char* base = static_cast<char*>(p);
    prepare_(base, bytes);
    char c = 'R';
    if (!write_all(out, &c, 1))
        _exit(12);
    while (read_all(in, &c, 1)) {
        if (c == 'r') {
            timespec c0, c1;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
            const uint64_t elapsed = run_(base);
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
            const uint64_t reply[2] = { elapsed,
                uint64_t((c1.tv_sec - c0.tv_sec) * 1'000'000'000 + (c1.tv_nsec - c0.tv_nsec)) };
            if (!write_all(out, reply, sizeof reply))
                _exit(13);
        } else if (c == 'v') {
            const long bad = check_(base);
            if (!write_all(out, &bad, sizeof bad))
                _exit(14);
        } else {
            break;
        }
    }
    _exit(0);
}

char* KernelSwapMapper::map(size_t bytes, bool)
{
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) != 0)
        fail("pipe2 failed: " + errno_text());
    if (pipe2(up, O_CLOEXEC) != 0) {
        close(down[0]);
        close(down[1]);
        fail("pipe2 failed: " + errno_text());
    }
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        child(bytes, down[0], up[1]);
    }
    close(down[0]);
    close(up[1]);
    if (pid < 0) {
        close(down[1]);
        close(up[0]);
        fail("fork failed: " + errno_text());
    }
    pid_ = pid;
    to_child_ = down[1];
    from_child_ = up[0];
    char c = 0;
    if (!read_all(from_child_, &c, 1) || c != 'R') {
        end_child();
        fail("the child in the memory cgroup failed to prepare its region");
    }
    // No address to hand out: the region lives in the child.
    return reinterpret_cast<char*>(uintptr_t(page_size()));
}

void KernelSwapMapper::send(char command)
{
    if (!write_all(to_child_, &command, 1))
        fail("the child in the memory cgroup is gone");
}

uint64_t KernelSwapMapper::run()
{
    send('r');
    uint64_t reply[2] = {};
    if (!read_all(from_child_, reply, sizeof reply))
        fail("the child in the memory cgroup died in the timed loop");
    cpu_ns_ = reply[1];
    return reply[0];
}

size_t KernelSwapMapper::swapped_bytes() const
{
    std::istringstream status(read_text("/proc/" + std::to_string(pid_) + "/status"));
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmSwap:", 0) == 0)
            return size_t(atoll(line.c_str() + 7)) * 1024;
    return 0;
}

void KernelSwapMapper::verify()
{
    // Before the check, which swaps everything in.
    const size_t swapped = swapped_bytes();
    send('v');
    long bad = 0;
    if (!read_all(from_child_, &bad, sizeof bad))
        fail("the child in the memory cgroup died in the check");
    if (bad >= 0)
        fail("page " + std::to_string(bad) + " holds wrong bytes under the kernel's swap");
    if (swapped == 0)
        fail("the kernel swapped nothing out (VmSwap 0): the cgroup's limit did not apply");
}

void KernelSwapMapper::end_child() noexcept
{
    if (pid_ <= 0)
        return;
    const char quit = 'q';
    (void)!write(to_child_, &quit, 1);
    close(to_child_);
    close(from_child_);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
}

void KernelSwapMapper::unmap(char*, size_t) { end_child(); }

} // namespace bench
