// runtime/file_swap_target.h — the runtime's own swap: a file it creates.
//
// The file is created unlinked (O_TMPFILE, or created and unlinked at once
// where the filesystem lacks it), so it never outlives the process, and it
// is sparse: it grows as slots are written. Reads go through the faulting
// handler's I/O port (io_uring, or the I/O worker where io_uring is off);
// the evictor writes a batch with its own ring and waits for it — pwrite(2)
// when io_uring is unavailable.
#pragma once

#include "io/ring.h"
#include "memory/swap_target.h"

#include <faultline/result.h>

#include <memory>
#include <string>

namespace faultline {

class FileSwapTarget final : public memory::SwapTarget {
public:
    // `path`: a directory to create the file in, or the name of a file to
    // create (it must not exist); empty: $TMPDIR, else /tmp. Refused with
    // the errno when the file cannot be created or `min_bytes` do not fit
    // on its filesystem now (ENOSPC).
    static Result<std::unique_ptr<FileSwapTarget>> create(const std::string& path, size_t page_size, bool io_uring,
        uint64_t min_bytes);
    ~FileSwapTarget() override;

    bool read(uint32_t slot, void* buffer, io::Operation* op, memory::IoPort* io) noexcept override;
    void write(Write* writes, size_t count) noexcept override;
    int fd() const noexcept { return fd_; }

private:
    FileSwapTarget(int fd, size_t page_size, std::unique_ptr<io::Ring> ring) noexcept
        : fd_(fd)
        , page_(page_size)
        , ring_(std::move(ring))
    {
    }
    int fd_;
    size_t page_;
    std::unique_ptr<io::Ring> ring_; // the evictor's; null: pwrite
};

} // namespace faultline
