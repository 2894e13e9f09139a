// bench/test_file.h — the file the file cases read and write.
//
// Its bytes are a function of their offset and a per-run seed, so the checks
// recompute what every byte must be instead of trusting a second read of the
// file. file_write_sync changes one byte per page in each repetition (a new
// "generation" of values); expected() knows about it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace bench {

class TestFile {
public:
    // Writes `bytes` of pseudo-random contents (a new seed per run) to a
    // file in a fresh directory under $TMPDIR (or /tmp), so on that file
    // system. The file is unlinked as soon as it is open: it disappears when
    // the process exits, however it exits (the watchdog's _exit included).
    // Calls fail() if it cannot be written, or if its page cache cannot be
    // dropped (tmpfs keeps files in memory whatever we ask, which would make
    // every "cold" figure a lie).
    explicit TestFile(size_t bytes);
    ~TestFile();
    TestFile(const TestFile&) = delete;
    TestFile& operator=(const TestFile&) = delete;

    size_t bytes() const { return bytes_; }
    size_t pages() const;
    int read_fd() const { return read_fd_; }  // O_RDONLY
    int write_fd() const { return write_fd_; } // O_RDWR
    // "1024 MiB of random bytes on ext4 (/tmp)", for the table.
    std::string describe() const;

    // The file's bytes [offset, offset+len) as they must be now; both
    // multiples of 8.
    void expected(size_t offset, size_t len, char* out) const;

    // file_write_sync: where each page's byte is written, and what a
    // generation writes there (each repetition a new one, so that a write
    // that never reached the file shows).
    static size_t write_offset(size_t page);
    static char write_value(size_t page, unsigned generation);
    // Starts a new generation: expected() reports its bytes from now on.
    unsigned begin_writes() { return ++generation_; }

    // Writes back whatever is dirty, then drops the file's page cache
    // (POSIX_FADV_DONTNEED), and checks with mincore(2) that no page is left.
    void drop_cache() const;

private:
    size_t bytes_;
    uint64_t seed_;
    std::string dir_;
    int read_fd_ = -1;
    int write_fd_ = -1;
    unsigned generation_ = 0;
};

} // namespace bench
