#include "runtime/cow_chains.h"

#include "os/pagemap.h"
#include "os/virtual_memory.h"
#include "support/log.h"
#include "support/try.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace faultline {

using memory::CowVMObject;
using memory::PageRun;
using memory::Region;

namespace {

bool own_entry(uint64_t e)
{
    return (os::Pagemap::present(e) || os::Pagemap::swapped(e)) && !os::Pagemap::file_or_shared(e);
}

} // namespace

Result<bool> CowChains::has_own_pages(const Region& view) const
{
    auto pagemap = TRY(os::Pagemap::open(false));
    auto [first, last] = TRY(pagemap.next_anonymous_run(view.base(), view.end(), features_.has(os::Feature::PagemapScan)));
    (void)last;
    return first < view.end();
}

Result<std::vector<PageRun>> CowChains::own_runs(const Region& view) const
{
    auto pagemap = TRY(os::Pagemap::open(false));
    const bool scan = features_.has(os::Feature::PagemapScan);
    const size_t window = view.object_offset() / page_;
    std::vector<PageRun> runs;
    for (uintptr_t at = view.base(); at < view.end();) {
        auto [first, last] = TRY(pagemap.next_anonymous_run(at, view.end(), scan));
        if (first >= view.end())
            break;
        const size_t lo = window + (first - view.base()) / page_, hi = window + (last - view.base()) / page_;
        if (!runs.empty() && runs.back().end == lo)
            runs.back().end = hi;
        else
            runs.push_back({ lo, hi });
        at = last;
    }
    return runs;
}

Result<void> CowChains::copy_pages(const char* from, int fd, off_t at, size_t len) const
{
    // Read through the view's mapping: what a thread of the program would
    // read now. The kernel does the copy (the raw system call:
    // ThreadSanitizer's pwrite interceptor would report the documented race
    // of a clone with the program's writers as the library's).
    for (size_t done = 0; done < len;) {
        ssize_t w = syscall(SYS_pwrite64, fd, from + done, len - done, at + off_t(done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EFAULT)
            // A view the program made unreadable (Access::None): read as a
            // debugger would (found by the c_api fuzzer).
            return copy_unreadable(from + done, fd, at + off_t(done), len - done);
        if (w <= 0)
            return failf(w < 0 ? errno : EIO, "copying the region for its clone failed: %s", strerror(w < 0 ? errno : EIO));
        done += size_t(w);
    }
    return {};
}

Result<void> CowChains::copy_unreadable(const char* from, int fd, off_t at, size_t len) const
{
    constexpr size_t kChunk = 256 * 1024;
    std::vector<char> buffer(std::min(len, kChunk));
    for (size_t done = 0; done < len;) {
        const size_t n = std::min(buffer.size(), len - done);
        if (int rc = os::read_own_memory(uintptr_t(from + done), buffer.data(), n); rc < 0)
            return failf(-rc, "reading the region for its clone failed: %s", strerror(-rc));
        for (size_t put = 0; put < n;) {
            ssize_t w = pwrite(fd, buffer.data() + put, n - put, at + off_t(done + put));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return failf(w < 0 ? errno : EIO, "copying the region for its clone failed: %s", strerror(w < 0 ? errno : EIO));
            put += size_t(w);
        }
        done += n;
    }
    return {};
}

Result<boost::intrusive_ptr<CowVMObject>> CowChains::clone_of_written(Region& source, size_t* offset)
{
    auto& object = static_cast<CowVMObject&>(source.object());
    *offset = 0;
    // Discarded ranges are fresh anonymous memory with no page until
    // touched: the page tables cannot tell them from frozen pages, so only
    // a copy through the view has the zeros right.
    if (object.overlaid())
        return copy_of(source);
    const std::vector<PageRun> top = TRY(own_runs(source));
    const size_t window = source.object_offset() / page_;
    std::vector<const std::vector<PageRun>*> below;
    for (const auto& layer : object.layers())
        below.push_back(&layer->runs());
    const memory::ChainPlan plan = memory::plan_chain(below, top, window, window + source.size() / page_, limits_);
    if (plan.flatten) {
        log::debug("clone: the chain would pass its limits (depth {}, {} runs at most): flattened", limits_.max_depth, limits_.max_runs);
        return copy_of(source);
    }
    auto fd = TRY(memory::CowVMObject::create_layer_memfd(object.size(), source.name().c_str()));
    for (const PageRun& run : top)
        if (auto copied = copy_pages(reinterpret_cast<const char*>(source.base() + (run.first - window) * page_), fd,
                off_t(run.first * page_), (run.end - run.first) * page_);
            !copied) {
            close(fd);
            return std::unexpected(copied.error());
        }
    std::vector<std::shared_ptr<const memory::CowLayer>> layers;
    for (size_t i : plan.keep)
        layers.push_back(object.layers()[i]);
    layers.push_back(TRY(memory::CowLayer::create(fd, top)));
    int base = fcntl(object.backing_fd(), F_DUPFD_CLOEXEC, 0);
    if (base < 0)
        return failf(errno, "duplicating the frozen object's descriptor failed: %s", strerror(errno));
    *offset = source.object_offset();
    return CowVMObject::try_create_chain(object.size(), page_, base, std::move(layers));
}

Result<boost::intrusive_ptr<CowVMObject>> CowChains::copy_of(const Region& source)
{
    const auto& from = static_cast<const CowVMObject&>(source.object());
    const size_t pages = source.size() / page_;
    const size_t window = source.object_offset() / page_;
    auto copy = TRY(CowVMObject::try_create(source.size(), page_, source.name().c_str()));
    // Which pages hold data: the base's (its memfd's data extents in the
    // source's window), its layers' runs and the source's own pages. Only
    // those are read: reading a hole through the mapping would allocate a
    // page for zeros.
    std::vector<uint8_t> data(pages, 0);
    auto mark = [&](size_t first, size_t end) { // object page numbers
        first = std::max(first, window);
        end = std::min(end, window + pages);
        for (size_t p = first; p < end; ++p)
            data[p - window] = 1;
    };
    const off_t window_start = off_t(source.object_offset());
    const off_t window_end = window_start + off_t(source.size());
    for (off_t at = window_start; at < window_end;) {
        off_t d = lseek(from.backing_fd(), at, SEEK_DATA);
        if (d < 0 || d >= window_end)
            break;
        off_t h = lseek(from.backing_fd(), d, SEEK_HOLE);
        if (h < 0 || h > window_end)
            h = window_end;
        mark(size_t(d) / page_, (size_t(h) + page_ - 1) / page_);
        at = h;
    }
    for (const auto& layer : from.layers())
        for (const PageRun& run : layer->runs())
            mark(run.first, run.end);
    for (const PageRun& run : TRY(own_runs(source)))
        mark(run.first, run.end);
    // Copied run by run through the source's mapping, into the new base at
    // offset 0 (a write racing the clone may or may not be in it, as with
    // fork(): docs/cow.md).
    for (size_t p = 0; p < pages;) {
        if (!data[p]) {
            ++p;
            continue;
        }
        size_t end = p + 1;
        while (end < pages && data[end])
            ++end;
        TRY(copy_pages(reinterpret_cast<const char*>(source.base() + p * page_), copy->backing_fd(), off_t(p * page_), (end - p) * page_));
        p = end;
    }
    copy->freeze();
    return copy;
}

} // namespace faultline
