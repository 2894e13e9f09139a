#include "umap/file_store.h"

#include <cerrno>
#include <fcntl.h>
#include <new>

namespace faultline::umap {

ssize_t FileStore::read_from_store(char* buf, std::size_t nb, off_t off)
{
    ssize_t rc;
    do
        rc = pread(fd_, buf, nb, off);
    while (rc < 0 && errno == EINTR);
    return rc;
}

ssize_t FileStore::write_to_store(char* buf, std::size_t nb, off_t off)
{
    ssize_t rc;
    do
        rc = pwrite(fd_, buf, nb, off);
    while (rc < 0 && errno == EINTR);
    return rc;
}

} // namespace faultline::umap

Umap::Store* Umap::Store::make_store(void* region, std::size_t rsize, std::size_t alignsize, int fd)
{
    (void)region, (void)rsize, (void)alignsize;
    if (fcntl(fd, F_GETFD) < 0) {
        errno = EBADF;
        return nullptr;
    }
    auto* store = new (std::nothrow) faultline::umap::FileStore(fd);
    if (!store)
        errno = ENOMEM;
    return store;
}
