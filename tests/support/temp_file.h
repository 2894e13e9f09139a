// A file with known contents in a temporary directory, removed when the test
// ends: what file-region tests map.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstdint>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace faultline::testing {

class TempFile {
public:
    // `bytes` of pseudo-random contents derived from `seed`.
    explicit TempFile(size_t bytes, uint32_t seed = 1)
    {
        const char* dir = std::getenv("TMPDIR");
        path_ = std::string(dir && *dir ? dir : "/tmp") + "/faultline-test-XXXXXX";
        fd_ = mkstemp(path_.data());
        EXPECT_GE(fd_, 0) << "mkstemp failed";
        contents_.resize(bytes);
        uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
        for (size_t i = 0; i < bytes; ++i) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            contents_[i] = char(x);
        }
        size_t done = 0;
        while (done < bytes) {
            ssize_t n = pwrite(fd_, contents_.data() + done, bytes - done, off_t(done));
            EXPECT_GT(n, 0);
            if (n <= 0)
                break;
            done += size_t(n);
        }
    }
    ~TempFile()
    {
        if (fd_ >= 0)
            close(fd_);
        unlink(path_.c_str());
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    int fd() const { return fd_; }
    const std::string& path() const { return path_; }
    const std::vector<char>& contents() const { return contents_; }
    size_t size() const { return contents_.size(); }

    // A descriptor of the file opened anew with `flags` (caller closes).
    int open_again(int flags) const { return ::open(path_.c_str(), flags | O_CLOEXEC); }
    // The file's bytes as they are on disk now.
    std::vector<char> read_back() const
    {
        struct stat st {};
        fstat(fd_, &st);
        std::vector<char> out(size_t(st.st_size));
        size_t done = 0;
        while (done < out.size()) {
            ssize_t n = pread(fd_, out.data() + done, out.size() - done, off_t(done));
            if (n <= 0)
                break;
            done += size_t(n);
        }
        return out;
    }
    off_t size_on_disk() const
    {
        struct stat st {};
        fstat(fd_, &st);
        return st.st_size;
    }

private:
    std::string path_;
    int fd_ = -1;
    std::vector<char> contents_;
};

} // namespace faultline::testing
