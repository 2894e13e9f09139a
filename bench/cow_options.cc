// bench/faultline-cow-options: the mechanisms copy-on-write could be built
// on, measured against the kernel's own copy-on-write after fork() in the
// same run (issue 12, docs/design.md "Copy-on-write"). It uses no faultline
// code: it is the evidence the design was chosen from, kept so the choice
// can be re-checked on another machine or kernel.
//
//   faultline-cow-options [MiB] [runs]      (default 256 MiB, 5 runs; medians)
//
// Cases, each against its baseline:
//   clone      fork() of a process holding the memory           vs  O(1) mmap of a frozen memfd twice
//                                                                   (and: copying resident pages into a memfd)
//   cow write  first write to every page after fork()           vs  after MAP_PRIVATE over a frozen memfd
//                                                                   and vs write-protect + copy-before-write
//                                                                   served by a minimal userfaultfd handler
//   clone read memory growth of a fork child reading everything vs  a MAP_PRIVATE view reading everything
#include <linux/userfaultfd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
const size_t kPage = size_t(sysconf(_SC_PAGESIZE));

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void touch_all(char* p, size_t bytes, char value)
{
    for (size_t off = 0; off < bytes; off += kPage)
        p[off] = value;
}

// kB of anonymous + shmem memory in use system-wide: what a shared page
// costs once, however many mappings it has (RSS counts it per mapping).
long anon_plus_shmem_kb()
{
    FILE* f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    long anon = 0, shmem = 0;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "AnonPages: %ld kB", &anon);
        sscanf(line, "Shmem: %ld kB", &shmem);
    }
    fclose(f);
    return anon + shmem;
}

char* anon(size_t bytes)
{
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return static_cast<char*>(p);
}

// A memfd holding `bytes` of written pages (the frozen object).
int frozen_memfd(size_t bytes)
{
    int fd = memfd_create("cow-frozen", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, off_t(bytes)) != 0) {
        perror("memfd");
        exit(1);
    }
    char* p = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    touch_all(p, bytes, 1);
    munmap(p, bytes);
    return fd;
}

// fork() of a process holding `bytes` written: ms for the fork() call (the
// child waits on a pipe so its exit does not overlap the next timing), and
// ns per page for the parent's first write to every page afterwards.
std::pair<double, double> fork_case(size_t bytes)
{
    char* p = anon(bytes);
    touch_all(p, bytes, 1);
    int pipefd[2];
    if (pipe(pipefd) != 0)
        exit(1);
    auto t = Clock::now();
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(pipefd[1]);
        (void)!read(pipefd[0], &c, 1);
        _exit(0);
    }
    const double fork_ms = ms_since(t);
    t = Clock::now();
    touch_all(p, bytes, 2);
    const double write_ns = ms_since(t) * 1e6 / double(bytes / kPage);
    close(pipefd[0]);
    close(pipefd[1]);
    waitpid(pid, nullptr, 0);
    munmap(p, bytes);
    return { fork_ms, write_ns };
}

// Clone by mapping a frozen memfd MAP_PRIVATE twice (the original and the
// clone, both diverging from it through the kernel's copy-on-write): ms for
// the two mmap() calls plus zapping the original's old mapping, and ns per
// page for the first write to every page of one side.
std::pair<double, double> memfd_case(size_t bytes)
{
    int fd = frozen_memfd(bytes);
    // The original as it was before the clone: mapped shared, populated.
    char* orig = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0));
    auto t = Clock::now();
    // Freeze: the original becomes a private view of the file, in place.
    char* a = static_cast<char*>(mmap(orig, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0));
    char* b = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
    const double clone_ms = ms_since(t);
    if (a == MAP_FAILED || b == MAP_FAILED)
        exit(1);
    t = Clock::now();
    touch_all(a, bytes, 2);
    const double write_ns = ms_since(t) * 1e6 / double(bytes / kPage);
    munmap(a, bytes);
    munmap(b, bytes);
    close(fd);
    return { clone_ms, write_ns };
}

// The cost of turning an anonymous region's resident pages into a frozen
// memfd (a clone of memory that does not live in a file yet): ms.
double copy_into_memfd_case(size_t bytes)
{
    char* p = anon(bytes);
    touch_all(p, bytes, 1);
    int fd = memfd_create("cow-copy", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, off_t(bytes)) != 0)
        exit(1);
    auto t = Clock::now();
    char* q = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    memcpy(q, p, bytes);
    const double ms = ms_since(t);
    munmap(q, bytes);
    munmap(p, bytes);
    close(fd);
    return ms;
}

// Write-protect + copy-before-write with a minimal userfaultfd handler: the
// region is write-protected (the freeze), and each first write makes the
// handler save the page (4 KiB memcpy into a snapshot area) and lift the
// protection. ns per page. Returns -1 where write-protect is unavailable.
double wp_copy_case(size_t bytes)
{
    int uffd = int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
    if (uffd < 0)
        return -1;
    uffdio_api api { .api = UFFD_API, .features = 0, .ioctls = 0 };
    if (ioctl(uffd, UFFDIO_API, &api) != 0 || !(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
        close(uffd);
        return -1;
    }
    char* p = anon(bytes);
    char* save = anon(bytes);
    touch_all(p, bytes, 1);
    touch_all(save, bytes, 0);
    uffdio_register reg { .range = { uintptr_t(p), bytes }, .mode = UFFDIO_REGISTER_MODE_WP, .ioctls = 0 };
    uffdio_writeprotect wp { .range = { uintptr_t(p), bytes }, .mode = UFFDIO_WRITEPROTECT_MODE_WP };
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0 || ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) != 0) {
        close(uffd);
        return -1;
    }
    std::atomic<bool> stop { false };
    std::thread handler([&] {
        pollfd pfd { uffd, POLLIN, 0 };
        uffd_msg msgs[64];
        while (!stop.load(std::memory_order_relaxed)) {
            if (poll(&pfd, 1, 10) <= 0)
                continue;
            ssize_t n = read(uffd, msgs, sizeof msgs);
            for (ssize_t i = 0; i < n / ssize_t(sizeof(uffd_msg)); ++i) {
                uintptr_t page = msgs[i].arg.pagefault.address & ~(kPage - 1);
                // The handler reads the page it saves: in faultline this copy
                // is made through a second mapping of the same memory.
                memcpy(save + (page - uintptr_t(p)), reinterpret_cast<char*>(page), kPage);
                uffdio_writeprotect un { .range = { page, kPage }, .mode = 0 };
                ioctl(uffd, UFFDIO_WRITEPROTECT, &un);
            }
        }
    });
    auto t = Clock::now();
    touch_all(p, bytes, 2);
    const double ns = ms_since(t) * 1e6 / double(bytes / kPage);
    stop = true;
    handler.join();
    close(uffd);
    munmap(p, bytes);
    munmap(save, bytes);
    return ns;
}

// Physical memory a reader of the clone adds, per byte of the region: a
// fork child reading everything, and a MAP_PRIVATE view of a frozen memfd
// reading everything. 0 = shared, 1 = duplicated.
std::pair<double, double> read_growth_case(size_t bytes)
{
    char* p = anon(bytes);
    touch_all(p, bytes, 1);
    int pipefd[2], done[2];
    if (pipe(pipefd) != 0 || pipe(done) != 0)
        exit(1);
    long before = anon_plus_shmem_kb();
    pid_t pid = fork();
    if (pid == 0) {
        volatile long sum = 0;
        for (size_t off = 0; off < bytes; off += kPage)
            sum = sum + p[off];
        (void)!write(done[1], "x", 1);
        char c;
        (void)!read(pipefd[0], &c, 1);
        _exit(0);
    }
    char c;
    (void)!read(done[0], &c, 1);
    const double fork_growth = double(anon_plus_shmem_kb() - before) * 1024 / double(bytes);
    (void)!write(pipefd[1], "x", 1);
    waitpid(pid, nullptr, 0);
    munmap(p, bytes);
    for (int fd : { pipefd[0], pipefd[1], done[0], done[1] })
        close(fd);

    int fd = frozen_memfd(bytes);
    char* a = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
    before = anon_plus_shmem_kb();
    volatile long sum = 0;
    for (size_t off = 0; off < bytes; off += kPage)
        sum = sum + a[off];
    const double view_growth = double(anon_plus_shmem_kb() - before) * 1024 / double(bytes);
    munmap(a, bytes);
    close(fd);
    return { fork_growth, view_growth };
}

} // namespace

int main(int argc, char** argv)
{
    const size_t mib = argc > 1 ? size_t(atol(argv[1])) : 256;
    const int runs = argc > 2 ? atoi(argv[2]) : 5;
    const size_t bytes = mib << 20;
    std::vector<double> fork_ms, fork_ns, memfd_ms, memfd_ns, copy_ms, wp_ns, fork_growth, view_growth;
    for (int r = 0; r < runs; ++r) {
        auto [fm, fn] = fork_case(bytes);
        auto [mm, mn] = memfd_case(bytes);
        auto [fg, vg] = read_growth_case(bytes);
        fork_ms.push_back(fm);
        fork_ns.push_back(fn);
        memfd_ms.push_back(mm);
        memfd_ns.push_back(mn);
        copy_ms.push_back(copy_into_memfd_case(bytes));
        wp_ns.push_back(wp_copy_case(bytes));
        fork_growth.push_back(fg);
        view_growth.push_back(vg);
    }
    const double gib = double(bytes) / double(1ull << 30);
    printf("copy-on-write mechanisms, %zu MiB, median of %d runs (ratios against fork in the same run)\n", mib, runs);
    printf("%-44s %10.2f ms/GiB   baseline\n", "clone: fork()", median(fork_ms) / gib);
    printf("%-44s %10.2f ms/GiB   %.2fx\n", "clone: mmap frozen memfd (original + clone)", median(memfd_ms) / gib, median(memfd_ms) / median(fork_ms));
    printf("%-44s %10.2f ms/GiB   %.2fx\n", "clone: copy resident pages into a memfd", median(copy_ms) / gib, median(copy_ms) / median(fork_ms));
    printf("%-44s %10.0f ns/page  baseline\n", "first write: after fork()", median(fork_ns));
    printf("%-44s %10.0f ns/page  %.2fx\n", "first write: MAP_PRIVATE over frozen memfd", median(memfd_ns), median(memfd_ns) / median(fork_ns));
    if (median(wp_ns) >= 0)
        printf("%-44s %10.0f ns/page  %.2fx\n", "first write: write-protect + copy-before-write", median(wp_ns), median(wp_ns) / median(fork_ns));
    else
        printf("%-44s %10s\n", "first write: write-protect + copy-before-write", "unavailable");
    printf("%-44s %10.2f of the region\n", "read growth: fork child reads all", median(fork_growth));
    printf("%-44s %10.2f of the region\n", "read growth: MAP_PRIVATE view reads all", median(view_growth));
    return 0;
}
