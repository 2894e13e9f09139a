// umap/file_store.h — the Umap::Store that Umap::Store::make_store() returns:
// a file read and written with pread/pwrite, like umap's StoreFile. umap()
// itself does not use it (files go through faultline's io_uring file
// regions); it is there for programs that build a store from a descriptor.
#pragma once

#include <umap/store/Store.hpp>

namespace faultline::umap {

class FileStore final : public Umap::Store {
public:
    explicit FileStore(int fd) noexcept
        : fd_(fd)
    {
    }
    ssize_t read_from_store(char* buf, std::size_t nb, off_t off) override;
    ssize_t write_to_store(char* buf, std::size_t nb, off_t off) override;

private:
    int fd_; // the caller's: not closed here (umap's StoreFile does not either)
};

} // namespace faultline::umap
