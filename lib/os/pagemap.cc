#include "os/pagemap.h"

#include "os/virtual_memory.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace faultline::os {

Result<Pagemap> Pagemap::open()
{
    int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(errno, "cannot open /proc/self/pagemap");
    Pagemap map(fd);
    // Learn the zero page's PFN by reading a fresh anonymous page.
    void* probe = mmap(nullptr, page_size(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe != MAP_FAILED) {
        volatile const char* c = static_cast<const char*>(probe);
        (void)*c;
        if (auto e = map.read(uintptr_t(probe), 1); e && present((*e)[0]))
            map.zero_pfn_ = pfn((*e)[0]);
        munmap(probe, page_size());
    }
    return map;
}

Pagemap::Pagemap(Pagemap&& other) noexcept
    : fd_(other.fd_)
    , zero_pfn_(other.zero_pfn_)
{
    other.fd_ = -1;
}

Pagemap::~Pagemap()
{
    if (fd_ >= 0)
        ::close(fd_);
}

Result<std::vector<uint64_t>> Pagemap::read(uintptr_t addr, size_t pages) const
{
    std::vector<uint64_t> out(pages);
    size_t done = 0;
    off_t off = off_t(addr / page_size() * sizeof(uint64_t));
    while (done < pages * sizeof(uint64_t)) {
        ssize_t n = pread(fd_, reinterpret_cast<char*>(out.data()) + done, pages * sizeof(uint64_t) - done, off + off_t(done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail(n < 0 ? errno : EIO, "reading /proc/self/pagemap failed");
        done += size_t(n);
    }
    return out;
}

Pagemap::Kind Pagemap::classify(uint64_t e, bool installed_zero) const
{
    if (!present(e))
        return Kind::None;
    if (exclusive(e) || file_or_shared(e))
        return Kind::Private;
    if (zero_pfn_ != 0)
        return pfn(e) == zero_pfn_ ? Kind::Zero : Kind::Shared;
    return installed_zero ? Kind::Zero : Kind::Shared;
}

} // namespace faultline::os
