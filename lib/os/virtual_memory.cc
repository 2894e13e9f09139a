#include "os/virtual_memory.h"

#include "os/uffd_compat.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace faultline::os {

size_t page_size() noexcept
{
    static const size_t size = size_t(sysconf(_SC_PAGESIZE));
    return size;
}

static int rc(int r) noexcept { return r < 0 ? -errno : 0; }

void* reserve(size_t size, size_t alignment) noexcept
{
    size_t page = page_size();
    if (alignment < page)
        alignment = page;
    size_t over = size + alignment - page;
    if (over < size) {
        errno = ENOMEM;
        return nullptr;
    }
    void* p = mmap(nullptr, over, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return nullptr;
    uintptr_t start = uintptr_t(p);
    uintptr_t aligned = (start + alignment - 1) & ~(alignment - 1);
    if (aligned > start)
        munmap(p, aligned - start);
    uintptr_t tail = start + over;
    if (tail > aligned + size)
        munmap(reinterpret_cast<void*>(aligned + size), tail - (aligned + size));
    return reinterpret_cast<void*>(aligned);
}

int replace_with_reservation(uintptr_t addr, size_t len) noexcept
{
    void* p = mmap(reinterpret_cast<void*>(addr), len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return p == MAP_FAILED ? -errno : 0;
}

int map_shared_fixed(uintptr_t addr, size_t len, int prot, int fd) noexcept
{
    void* p = mmap(reinterpret_cast<void*>(addr), len, prot, MAP_SHARED | MAP_FIXED, fd, 0);
    return p == MAP_FAILED ? -errno : 0;
}

int map_fd_fixed(uintptr_t addr, size_t len, int prot, int type, int fd, size_t offset) noexcept
{
    void* p = mmap(reinterpret_cast<void*>(addr), len, prot, type | MAP_FIXED, fd, off_t(offset));
    return p == MAP_FAILED ? -errno : 0;
}

int remap_fd_fixed_keeping_contents(uintptr_t addr, size_t len, int prot, int type, int fd, size_t offset) noexcept
{
    long p = syscall(SYS_mmap, addr, len, prot, type | MAP_FIXED, fd, off_t(offset));
    return p == -1 ? -errno : 0;
}

long move_page_tables_aside(uintptr_t addr, size_t len) noexcept
{
    // The fifth argument is passed although only MREMAP_FIXED asks for it:
    // newer kernels check it whenever the mapping moves, and mremap() being
    // variadic, leaving it out would pass whatever the register held.
    void* p = mremap(reinterpret_cast<void*>(addr), len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, nullptr);
    return p == MAP_FAILED ? -errno : long(reinterpret_cast<uintptr_t>(p));
}

int map_anonymous_fixed(uintptr_t addr, size_t len, int prot) noexcept
{
    void* p = mmap(reinterpret_cast<void*>(addr), len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    return p == MAP_FAILED ? -errno : 0;
}

int unmap(uintptr_t addr, size_t len) noexcept { return rc(munmap(reinterpret_cast<void*>(addr), len)); }
int protect(uintptr_t addr, size_t len, int prot) noexcept { return rc(mprotect(reinterpret_cast<void*>(addr), len, prot)); }
int discard(uintptr_t addr, size_t len) noexcept { return rc(madvise(reinterpret_cast<void*>(addr), len, MADV_DONTNEED)); }
int read_own_memory(uintptr_t addr, void* out, size_t len) noexcept
{
    int fd = ::open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int result = 0;
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(fd, static_cast<char*>(out) + done, len - done, off_t(addr + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            result = n < 0 ? -errno : -EIO;
            break;
        }
        done += size_t(n);
    }
    close(fd);
    return result;
}

int seal(uintptr_t addr, size_t len) noexcept { return rc(int(syscall(SYS_mseal, addr, len, 0))); }

int set_anon_name(uintptr_t addr, size_t len, const char* name) noexcept
{
    return rc(prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, len, name));
}

int create_empty_memfd() noexcept
{
    int fd = memfd_create("faultline-sigbus", MFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int map_sigbus_page(uintptr_t addr, size_t len, int prot, int empty_fd) noexcept
{
    // A shared mapping of an empty file: the kernel answers any access past
    // EOF with SIGBUS, to whichever thread makes it.
    void* p = mmap(reinterpret_cast<void*>(addr), len, prot, MAP_SHARED | MAP_FIXED, empty_fd, 0);
    return p == MAP_FAILED ? -errno : 0;
}

bool kernel_has_mseal() noexcept
{
    // A zero-length seal is a no-op that only kernels with mseal(2) accept.
    void* p = mmap(nullptr, page_size(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = syscall(SYS_mseal, uintptr_t(p), 0, 0) == 0;
    munmap(p, page_size());
    return ok;
}

bool kernel_has_anon_name() noexcept
{
    void* p = mmap(nullptr, page_size(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, uintptr_t(p), page_size(), "faultline-probe") == 0;
    munmap(p, page_size());
    return ok;
}

bool kernel_moves_shared_page_tables() noexcept
{
    int fd = memfd_create("faultline-probe", MFD_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = false;
    const size_t page = page_size();
    if (ftruncate(fd, off_t(page)) == 0) {
        void* p = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            static_cast<volatile char*>(p)[0] = 1;
            long moved = move_page_tables_aside(uintptr_t(p), page);
            ok = moved >= 0 && static_cast<volatile char*>(p)[0] == 1;
            if (moved >= 0)
                munmap(reinterpret_cast<void*>(moved), page);
            munmap(p, page);
        }
    }
    close(fd);
    return ok;
}

} // namespace faultline::os
