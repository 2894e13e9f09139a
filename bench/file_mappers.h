// bench/file_mappers.h — the three ways the file cases reach the test file:
// a faultline file region, the kernel's mmap(2), and io_uring reads.
//
// As Mapper (bench.h): map() starts a repetition (dropping the file's page
// cache first for a cold one) and returns the mapping; unmap() ends it.
#pragma once

#include "bench.h"
#include "test_file.h"

#include <faultline/runtime.h>

#include <liburing.h>

#include <memory>

namespace bench {

// How a side starts each repetition.
struct Prepare {
    bool writable = false; // a read-write shared mapping (through the O_RDWR descriptor)
    bool cold = true;      // drop the file's page cache first
    bool warm = false;     // touch every page once (untimed) before the timed loop
    bool direct_io = false; // faultline side: FileMapOptions::direct_io (O_DIRECT reads)
};

// A shared file region from a Runtime created for this repetition alone and
// destroyed with it: neither the runtime's cache of the file (which lives as
// long as a region views it, FileRegions::prune) nor its handler threads'
// placement carries over to the next repetition.
class FileRegionMapper final : public Mapper {
public:
    FileRegionMapper(std::shared_ptr<TestFile> file, faultline::Config config, Prepare prepare,
        std::string label = "faultline")
        : file_(std::move(file)), config_(config), prepare_(prepare), label_(std::move(label))
    {
    }
    std::string name() const override { return label_; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;
    // Runtime::sync(SyncFlags::Sync) of the current region.
    void sync(char* base, size_t bytes);
    faultline::RegionStats stats(const void* base) const;
    // Whether the runtime finds written pages exactly (minor faults and
    // write-protect): otherwise every cached page of a writable file counts
    // as dirty, synced or not (docs/api.md, sync).
    bool tracks_writes() const
    {
        return runtime_ && runtime_->has_feature("minor")
            && (runtime_->has_feature("wp_shmem") || runtime_->has_feature("wp_async"));
    }

private:
    std::shared_ptr<TestFile> file_;
    faultline::Config config_;
    Prepare prepare_;
    std::string label_;
    std::unique_ptr<faultline::Runtime> runtime_;
};

// mmap(MAP_SHARED) of the file: what a program gets without faultline.
class FileMmapMapper final : public Mapper {
public:
    FileMmapMapper(std::shared_ptr<TestFile> file, Prepare prepare) : file_(std::move(file)), prepare_(prepare) {}
    std::string name() const override { return "native-mmap"; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;
    // msync(MS_SYNC).
    void sync(char* base, size_t bytes);

private:
    std::shared_ptr<TestFile> file_;
    Prepare prepare_;
};

// No mapping: io_uring reads of one page at a time into a buffer, each
// waited for before the next is submitted — the budget of a faulting
// thread, which has one read outstanding. map() drops the page cache and
// returns the buffer.
class UringReader final : public Mapper {
public:
    explicit UringReader(std::shared_ptr<TestFile> file);
    ~UringReader() override;
    std::string name() const override { return "io_uring-read-qd1"; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char*, size_t) override {}
    // Reads file page `page` into the buffer and returns the buffer.
    const char* read(size_t page);

private:
    std::shared_ptr<TestFile> file_;
    io_uring ring_ {};
    char* buffer_ = nullptr;
};

} // namespace bench
