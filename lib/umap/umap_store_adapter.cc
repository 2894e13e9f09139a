#include "umap/umap_store_adapter.h"

#include <algorithm>
#include <cerrno>
#include <mutex>

namespace faultline::umap {

namespace {

// -errno for a call that returned a negative count: umap's stores return -1
// with errno set (StoreFile passes pread's result on); one that forgot errno
// still fails, as EIO.
int64_t failure() noexcept { return -int64_t(errno > 0 ? errno : EIO); }

} // namespace

void UmapStoreAdapter::detach() noexcept
{
    std::unique_lock g(lock_);
    store_ = nullptr;
}

int64_t UmapStoreAdapter::read(void* buffer, size_t bytes, uint64_t offset) noexcept
{
    std::shared_lock g(lock_);
    if (!store_)
        return -EIO;
    char* out = static_cast<char*>(buffer);
    size_t done = 0;
    while (done < bytes && offset + done < end_) {
        const uint64_t at = offset + done;
        // At most up to the next umap page boundary (and the region's end).
        const uint64_t boundary = (at / page_ + 1) * page_;
        const size_t want = size_t(std::min<uint64_t>({ bytes - done, boundary - at, end_ - at }));
        errno = 0;
        const ssize_t rc = store_->read_from_store(out + done, want, off_t(at));
        if (rc < 0)
            return failure();
        // Nothing more (or a store claiming more than asked): stop short, and
        // the runtime raises SIGBUS for the pages inside the region left
        // unread. A store that returns part of a piece is asked for the rest.
        if (rc == 0 || size_t(rc) > want)
            break;
        done += size_t(rc);
    }
    return int64_t(done);
}

int64_t UmapStoreAdapter::write(const void* buffer, size_t bytes, uint64_t offset) noexcept
{
    std::shared_lock g(lock_);
    if (!store_)
        return -EIO;
    // umap's interface takes a char*; the runtime's page is only read.
    char* in = const_cast<char*>(static_cast<const char*>(buffer));
    size_t done = 0;
    while (done < bytes) {
        const uint64_t at = offset + done;
        const uint64_t boundary = (at / page_ + 1) * page_;
        const size_t want = size_t(std::min<uint64_t>(bytes - done, boundary - at));
        errno = 0;
        const ssize_t rc = store_->write_to_store(in + done, want, off_t(at));
        if (rc < 0)
            return failure();
        // A store that writes part of a piece is asked for the rest; one that
        // writes nothing fails the write-back (the pages stay dirty).
        if (rc == 0 || size_t(rc) > want)
            return -EIO;
        done += size_t(rc);
    }
    return int64_t(done);
}

} // namespace faultline::umap
