// bench/baseline_uffd.cc — the minimal userfaultfd handler, the floor that
// anon_single_fault compares faultline against.
//
// It does what every userfaultfd server must do for one fault and nothing
// else: wait in poll(2), read(2) the message, UFFDIO_COPY one zero page
// (which also wakes the faulting thread). No region lookup, no bookkeeping,
// no separate wake, no fault-around. Whatever faultline adds on top of this
// is its own overhead; what this costs is the kernel's and the scheduler's.
#include "mappers.h"

#include <linux/userfaultfd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bench {

namespace {

int open_userfaultfd()
{
    int fd = int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    // Without privilege (vm.unprivileged_userfaultfd=0, not root) only a
    // user-mode-only descriptor may be opened. The bench touches memory from
    // user space only, so it serves the same faults; faultline falls back the
    // same way (Config::UffdMode::Auto).
    if (fd < 0 && errno == EPERM)
        fd = int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
    return fd;
}

} // namespace

MinimalUffdMapper::MinimalUffdMapper()
{
    uffd_ = open_userfaultfd();
    if (uffd_ < 0)
        fail(std::string("baseline: userfaultfd failed: ") + strerror(errno));
    uffdio_api api {};
    api.api = UFFD_API;
    api.features = 0;
    if (ioctl(uffd_, UFFDIO_API, &api) != 0)
        fail(std::string("baseline: UFFDIO_API failed: ") + strerror(errno));
    // The source of every copy: populated and read-only now, so a copy never
    // takes a fault on it.
    void* z = mmap(nullptr, page_size(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (z == MAP_FAILED)
        fail(std::string("baseline: mmap of the zero page failed: ") + strerror(errno));
    zero_page_ = static_cast<char*>(z);
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0)
        fail(std::string("baseline: eventfd failed: ") + strerror(errno));
    thread_ = std::thread([this] { serve(); });
    // Named so that profiles (perf, top -H) tell it apart from the
    // faulting thread and from faultline's own "faultline-uffd" threads.
    pthread_setname_np(thread_.native_handle(), "baseline-uffd");
}

MinimalUffdMapper::~MinimalUffdMapper()
{
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    if (thread_.joinable())
        thread_.join();
    close(stop_fd_);
    close(uffd_);
    munmap(zero_page_, page_size());
}

void MinimalUffdMapper::serve() noexcept
{
    // The stop eventfd sits in the same poll set; it never fires while
    // faults are being measured, so it adds nothing to a fault's path.
    pollfd fds[2] = { { uffd_, POLLIN, 0 }, { stop_fd_, POLLIN, 0 } };
    uffd_msg msgs[16];
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("baseline: poll");
            return;
        }
        if (fds[1].revents & POLLIN)
            return;
        ssize_t n = read(uffd_, msgs, sizeof msgs);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            perror("baseline: read");
            return;
        }
        for (size_t i = 0; i < size_t(n) / sizeof msgs[0]; ++i) {
            if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
                continue;
            uffdio_copy copy {};
            copy.dst = msgs[i].arg.pagefault.address & ~uint64_t(page_size() - 1);
            copy.src = uint64_t(uintptr_t(zero_page_));
            copy.len = page_size();
            copy.mode = 0; // wake the faulting thread as part of the copy
            // EEXIST: two threads faulted the same page and the first copy
            // already placed it (and woke both). Anything else would leave a
            // thread waiting forever, so say so; the bench's watchdog ends
            // the run.
            if (ioctl(uffd_, UFFDIO_COPY, &copy) != 0 && errno != EEXIST)
                fprintf(stderr, "baseline: UFFDIO_COPY at %#llx failed: %s\n", (unsigned long long)copy.dst,
                    strerror(errno));
        }
    }
}

char* MinimalUffdMapper::map(size_t bytes, bool sparse)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (sparse ? MAP_NORESERVE : 0);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED)
        fail("baseline: mmap(" + std::to_string(bytes) + ") failed: " + strerror(errno));
    uffdio_register reg {};
    reg.range.start = uint64_t(uintptr_t(p));
    reg.range.len = bytes;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (ioctl(uffd_, UFFDIO_REGISTER, &reg) != 0) {
        int err = errno;
        munmap(p, bytes);
        fail(std::string("baseline: UFFDIO_REGISTER failed: ") + strerror(err));
    }
    return static_cast<char*>(p);
}

void MinimalUffdMapper::unmap(char* base, size_t bytes)
{
    // munmap(2) unregisters the range as it goes.
    if (munmap(base, bytes) != 0)
        fail(std::string("baseline: munmap failed: ") + strerror(errno));
}

} // namespace bench
