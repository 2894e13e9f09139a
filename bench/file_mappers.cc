// bench/file_mappers.cc — faultline file regions, kernel mmap, io_uring reads.
#include "file_mappers.h"

#include "mappers.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>

namespace bench {

namespace {

void touch_every_page(const char* base, size_t bytes)
{
    for (size_t off = 0; off < bytes; off += page_size())
        (void)*reinterpret_cast<const volatile char*>(base + off);
}

std::string errno_text() { return strerror(errno); }

} // namespace

char* FileRegionMapper::map(size_t bytes, bool)
{
    if (prepare_.cold)
        file_->drop_cache();
    runtime_ = make_runtime(config_);
    faultline::FileMapOptions o;
    o.length = bytes;
    o.access = prepare_.writable ? faultline::Access::ReadWrite : faultline::Access::Read;
    o.sharing = faultline::Sharing::Shared;
    o.name = "bench-file";
    o.direct_io = prepare_.direct_io;
    // Default readahead: the library's behaviour without tuning.
    auto p = runtime_->map_file(prepare_.writable ? file_->write_fd() : file_->read_fd(), o);
    if (!p)
        fail("faultline map_file failed: " + std::string(p.error().message()));
    if (prepare_.warm)
        touch_every_page(static_cast<char*>(*p), bytes);
    return static_cast<char*>(*p);
}

void FileRegionMapper::unmap(char* base, size_t bytes)
{
    auto ok = runtime_->unmap(base, bytes);
    // Destroying the runtime frees its cache of the file (the memfd).
    runtime_.reset();
    if (!ok)
        fail("faultline unmap failed: " + std::string(ok.error().message()));
}

void FileRegionMapper::sync(char* base, size_t bytes)
{
    if (auto ok = runtime_->sync(base, bytes, faultline::SyncFlags::Sync); !ok)
        fail("faultline sync failed: " + std::string(ok.error().message()));
}

faultline::RegionStats FileRegionMapper::stats(const void* base) const
{
    auto s = runtime_->region_stats(base);
    if (!s)
        fail("region_stats failed: " + std::string(s.error().message()));
    return *s;
}

char* FileMmapMapper::map(size_t bytes, bool)
{
    if (prepare_.cold)
        file_->drop_cache();
    const int prot = PROT_READ | (prepare_.writable ? PROT_WRITE : 0);
    void* p = mmap(nullptr, bytes, prot, MAP_SHARED, prepare_.writable ? file_->write_fd() : file_->read_fd(), 0);
    if (p == MAP_FAILED)
        fail("mmap of the test file failed: " + errno_text());
    if (prepare_.warm)
        touch_every_page(static_cast<char*>(p), bytes);
    return static_cast<char*>(p);
}

void FileMmapMapper::unmap(char* base, size_t bytes)
{
    if (munmap(base, bytes) != 0)
        fail("munmap failed: " + errno_text());
}

void FileMmapMapper::sync(char* base, size_t bytes)
{
    if (msync(base, bytes, MS_SYNC) != 0)
        fail("msync failed: " + errno_text());
}

UringReader::UringReader(std::shared_ptr<TestFile> file) : file_(std::move(file))
{
    // No SQPOLL, no registered buffers: the plain ring an application (and
    // faultline's own I/O) would set up.
    if (int rc = io_uring_queue_init(4, &ring_, 0); rc < 0)
        fail("io_uring_queue_init failed: " + std::string(strerror(-rc)));
    buffer_ = static_cast<char*>(aligned_alloc(page_size(), page_size()));
    if (!buffer_) {
        io_uring_queue_exit(&ring_);
        fail("out of memory for the read buffer");
    }
}

UringReader::~UringReader()
{
    io_uring_queue_exit(&ring_);
    free(buffer_);
}

char* UringReader::map(size_t, bool)
{
    file_->drop_cache();
    return buffer_;
}

const char* UringReader::read(size_t page)
{
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_); // never null: nothing else is queued
    io_uring_prep_read(sqe, file_->read_fd(), buffer_, unsigned(page_size()), page * page_size());
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc >= 0)
        rc = io_uring_peek_cqe(&ring_, &cqe);
    if (rc < 0 || !cqe)
        fail("io_uring read failed: " + std::string(strerror(-rc)));
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    if (res != int(page_size()))
        fail("io_uring read of page " + std::to_string(page) + " returned " + std::to_string(res));
    return buffer_;
}

} // namespace bench
