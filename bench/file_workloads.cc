// bench/file_workloads.cc — the file cases' loops (timed) and checks
// (untimed).
//
// The timed loops fold what they load into a checksum weighted by page index
// (a page read at the wrong offset changes it), compared with the file's
// expected bytes after the repetition; the mapping sides are then compared
// with the file byte for byte, and file_write_sync reads the whole file back.
#include "file_workloads.h"
#include "waiting_child.h"

#include "file_mappers.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <random>
#include <unistd.h>
#include <vector>

namespace bench {

namespace {

constexpr size_t kStride = 512; // the timed loops load 8 bytes every 512
constexpr size_t kChunk = size_t(1) << 20; // file_write_sync's check reads 1 MiB at a time

// What a timed loop makes of one page: the sum of eight 8-byte loads, 512
// bytes apart, weighted by the page's index. `volatile`: exactly these loads,
// in this order, none merged or hoisted.
inline uint64_t load_page(const char* page, size_t index)
{
    uint64_t sum = 0;
    for (size_t k = 0; k < page_size(); k += kStride)
        sum += *reinterpret_cast<const volatile uint64_t*>(page + k);
    return sum * (2 * index + 1);
}

[[noreturn]] void wrong_byte(const char* got, const char* want, size_t len, size_t offset, const std::string& where)
{
    size_t i = 0;
    while (i < len && got[i] == want[i])
        ++i;
    fail(where + ": file offset " + std::to_string(offset + i) + " (page " + std::to_string((offset + i) / page_size()) +
         ") reads " + std::to_string(int(uint8_t(got[i]))) + ", the file has " + std::to_string(int(uint8_t(want[i]))));
}

// Compares `pages` (file page numbers) as mapped at `base` with the file,
// byte for byte, and returns their load_page checksum computed from the
// expected bytes (what the timed loop must have found).
uint64_t check_mapped(const TestFile& file, const char* base, const std::vector<uint32_t>& pages, const std::string& where)
{
    std::vector<char> want(page_size());
    uint64_t sum = 0;
    for (uint32_t page : pages) {
        const size_t off = size_t(page) * page_size();
        file.expected(off, page_size(), want.data());
        if (memcmp(base + off, want.data(), page_size()) != 0)
            wrong_byte(base + off, want.data(), page_size(), off, where);
        sum += load_page(want.data(), page);
    }
    return sum;
}

uint64_t expected_sum(const TestFile& file, const std::vector<uint32_t>& pages)
{
    std::vector<char> want(page_size());
    uint64_t sum = 0;
    for (uint32_t page : pages) {
        file.expected(size_t(page) * page_size(), page_size(), want.data());
        sum += load_page(want.data(), page);
    }
    return sum;
}

void check_sum(uint64_t got, uint64_t want, const std::string& where)
{
    if (got != want)
        fail(where + ": the timed loop's checksum is " + std::to_string(got) + ", the file's " + std::to_string(want));
}

// Reads the whole file back with pread(2), as any other reader would see it.
void check_file_contents(const TestFile& file)
{
    std::vector<char> got(kChunk), want(kChunk);
    for (size_t off = 0; off < file.bytes(); off += kChunk) {
        const size_t n = std::min(kChunk, file.bytes() - off);
        if (pread(file.read_fd(), got.data(), n, off_t(off)) != ssize_t(n))
            fail("pread of the test file failed: " + std::string(strerror(errno)));
        file.expected(off, n, want.data());
        if (memcmp(got.data(), want.data(), n) != 0)
            wrong_byte(got.data(), want.data(), n, off, "the file after sync");
    }
}

std::vector<uint32_t> all_pages(size_t pages)
{
    std::vector<uint32_t> v(pages);
    for (size_t i = 0; i < pages; ++i)
        v[i] = uint32_t(i);
    return v;
}

// A region never read from the file was served from somewhere else: the
// runtime's cache of an earlier repetition, which "cold" rules out.
void check_cold(const faultline::RegionStats& s, size_t bytes_needed)
{
    if (s.file_bytes_read < bytes_needed || s.inode_faults == 0)
        fail("the region read " + std::to_string(s.file_bytes_read) + " bytes from the file with " +
             std::to_string(s.inode_faults) + " faults; a cold pass needs at least " + std::to_string(bytes_needed));
}

// file_seq_read_cold and _warm: the same loop over every page in file order.
FileCase seq_read(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config, bool cold,
    bool direct_io = false)
{
    const Prepare prepare { .cold = cold, .warm = !cold, .direct_io = direct_io };
    auto fl = std::make_unique<FileRegionMapper>(file, config, prepare);
    auto pages = std::make_shared<std::vector<uint32_t>>(all_pages(file->pages()));
    auto sum = std::make_shared<uint64_t>(0);
    FileCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ns/page";
    w.bytes = file->bytes();
    w.units = file->pages();
    w.run = [n = file->pages(), sum](char* base) {
        uint64_t total = 0;
        const uint64_t t0 = now_ns();
        for (size_t i = 0; i < n; ++i)
            total += load_page(base + i * page_size(), i);
        const uint64_t elapsed = now_ns() - t0;
        *sum = total;
        return elapsed;
    };
    w.baseline_verify = [file, pages, sum](const char* base) {
        check_sum(*sum, check_mapped(*file, base, *pages, "read through the mapping"), "read through the mapping");
    };
    w.verify = [v = w.baseline_verify, mapper = fl.get(), cold, bytes = w.bytes](const char* base) {
        v(base);
        if (cold)
            check_cold(mapper->stats(base), bytes);
    };
    c.faultline = std::move(fl);
    c.baseline = std::make_unique<FileMmapMapper>(file, prepare);
    return c;
}

} // namespace

FileCase file_seq_read_cold(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config)
{
    return seq_read(std::move(name), std::move(file), config, true);
}

FileCase file_seq_read_cold_direct(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config)
{
    return seq_read(std::move(name), std::move(file), config, true, true);
}

FileCase file_seq_read_warm(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config)
{
    return seq_read(std::move(name), std::move(file), config, false);
}

FileCase random_reads(std::string name, std::shared_ptr<TestFile> file, size_t reads, std::unique_ptr<Mapper> side,
    std::function<void(const char* base, size_t bytes_needed)> check, const std::string& where)
{
    // The first `reads` pages of a fixed shuffle: distinct pages spread over
    // the whole file, in the same order on both sides and in every run.
    auto order = std::make_shared<std::vector<uint32_t>>(all_pages(file->pages()));
    std::shuffle(order->begin(), order->end(), std::mt19937_64(0x5eed));
    order->resize(std::min(reads, order->size()));
    auto reader = std::make_unique<UringReader>(file);
    auto sum = std::make_shared<uint64_t>(0);
    FileCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ns/page";
    w.bytes = file->bytes();
    w.units = order->size();
    w.run = [order, sum](char* base) {
        uint64_t total = 0;
        const uint64_t t0 = now_ns();
        for (uint32_t page : *order)
            total += load_page(base + size_t(page) * page_size(), page);
        const uint64_t elapsed = now_ns() - t0;
        *sum = total;
        return elapsed;
    };
    w.verify = [file, order, sum, check, where](const char* base) {
        check_sum(*sum, check_mapped(*file, base, *order, where), where);
        if (check)
            check(base, order->size() * page_size());
    };
    w.baseline_run = [order, sum, r = reader.get()](char*) {
        uint64_t total = 0;
        const uint64_t t0 = now_ns();
        for (uint32_t page : *order)
            total += load_page(r->read(page), page);
        const uint64_t elapsed = now_ns() - t0;
        *sum = total;
        return elapsed;
    };
    w.baseline_verify = [file, order, sum](const char*) {
        check_sum(*sum, expected_sum(*file, *order), "io_uring reads");
    };
    c.faultline = std::move(side);
    c.baseline = std::move(reader);
    return c;
}

FileCase file_rand_read_cold(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config,
    size_t reads)
{
    auto fl = std::make_unique<FileRegionMapper>(file, config, Prepare {});
    auto check = [mapper = fl.get()](const char* base, size_t bytes) { check_cold(mapper->stats(base), bytes); };
    return random_reads(std::move(name), file, reads, std::move(fl), check, "read through the region");
}

FileCase file_write_sync(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config)
{
    // Cold like the read cases: every written page is first read from the
    // disk on both sides, as when a program updates a file it has not read.
    const Prepare prepare { .writable = true, .cold = true };
    auto fl = std::make_unique<FileRegionMapper>(file, config, prepare);
    auto native = std::make_unique<FileMmapMapper>(file, prepare);
    // The timed part: a new generation of one byte per page, then the sync
    // that puts them in the file (on stable storage: fdatasync).
    auto write_and_sync = [file](char* base, auto&& sync) {
        const unsigned generation = file->begin_writes();
        const size_t pages = file->pages();
        const uint64_t t0 = now_ns();
        for (size_t i = 0; i < pages; ++i) {
            volatile char* p = base + i * page_size();
            p[TestFile::write_offset(i)] = TestFile::write_value(i, generation);
        }
        sync();
        return now_ns() - t0;
    };
    FileCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ns/page";
    w.bytes = file->bytes();
    w.units = file->pages();
    w.run = [write_and_sync, m = fl.get(), bytes = w.bytes](char* base) {
        return write_and_sync(base, [&] { m->sync(base, bytes); });
    };
    w.baseline_run = [write_and_sync, m = native.get(), bytes = w.bytes](char* base) {
        return write_and_sync(base, [&] { m->sync(base, bytes); });
    };
    // Checked before the region is unmapped, so that what the file holds
    // was written by the sync, not by the unmap's write-back.
    w.verify = [file, m = fl.get()](const char* base) {
        const faultline::RegionStats s = m->stats(base);
        if (m->tracks_writes() && s.dirty_pages != 0)
            fail(std::to_string(s.dirty_pages) + " pages of the region are still dirty after sync");
        check_file_contents(*file);
    };
    w.baseline_verify = [file](const char*) { check_file_contents(*file); };
    c.faultline = std::move(fl);
    c.baseline = std::move(native);
    return c;
}

FileCase file_fork(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config)
{
    const Prepare prepare { .writable = false, .cold = false, .warm = true };
    auto fl = std::make_unique<FileRegionMapper>(file, config, prepare);
    auto native = std::make_unique<FileMmapMapper>(file, prepare);
    auto timed_fork = [file](char* base) {
        // The child reads 64 pages spread over the file: the bytes it sees
        // are the file's, whichever way it maps them.
        auto check = [file, base] {
            const size_t step = std::max<size_t>(1, file->pages() / 64);
            char want[64];
            for (size_t page = 0; page < file->pages(); page += step) {
                file->expected(page * page_size(), sizeof want, want);
                if (memcmp(base + page * page_size(), want, sizeof want) != 0)
                    return 1;
            }
            return 0;
        };
        const uint64_t t0 = now_ns();
        WaitingChild child(check);
        child.wait_running();
        const uint64_t elapsed = now_ns() - t0;
        if (int status = child.release(); status != 0)
            fail("the fork child read wrong bytes (status " + std::to_string(status) + ")");
        return elapsed;
    };
    FileCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ms";
    w.bytes = file->bytes();
    w.units = 1000000;
    w.run = timed_fork;
    w.baseline_run = timed_fork;
    w.verify = [file](const char* base) { (void)check_mapped(*file, base, all_pages(file->pages()), "the parent after the fork"); };
    w.baseline_verify = w.verify;
    c.faultline = std::move(fl);
    c.baseline = std::move(native);
    return c;
}

} // namespace bench
