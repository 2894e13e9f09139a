// umap/store/Store.hpp — umap's page store interface (umap 2.1), on
// faultline (docs/umap.md).
//
// Derive from Umap::Store and pass it to Umap::umap_ex(): the region's pages
// are read with read_from_store() and written back with write_to_store().
// `off` is the byte offset in the store (the region's first byte is at the
// umap_ex offset); `nb` is at most one umap page and never crosses a umap
// page boundary. Both return the bytes done, or -1 with errno set.
//
// Calls come from faultline's threads, never the application's: reads on up
// to UMAP_PAGE_FILLERS store threads at once, writes on the thread that runs
// umap_flush()/uunmap() (or evicts), beside reads of other pages — as in
// umap, a store must be thread-safe.
#ifndef FAULTLINE_UMAP_STORE_HPP
#define FAULTLINE_UMAP_STORE_HPP

#include <cstddef>
#include <cstdint>
#include <sys/types.h>
#include <unistd.h>

#ifndef UMAP_API
#define UMAP_API __attribute__((visibility("default")))
#endif

namespace Umap {

class UMAP_API Store {
public:
    // Not in umap 2.1: lets a store be deleted through a Store* (a program
    // written for umap compiles the same either way).
    virtual ~Store() = default;

    // A store of the file `fd` (pread/pwrite; the caller keeps and closes
    // fd). `region`, `rsize` and `alignsize` are accepted for umap's sake
    // and not used. nullptr with errno = EBADF if fd is not open.
    static Store* make_store(void* region, std::size_t rsize, std::size_t alignsize, int fd);

    virtual ssize_t read_from_store(char* buf, std::size_t nb, off_t off) = 0;
    // `buf` holds the page being written back: read it, do not change it.
    virtual ssize_t write_to_store(char* buf, std::size_t nb, off_t off) = 0;
};

} // namespace Umap

#endif
