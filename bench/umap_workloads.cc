// bench/umap_workloads.cc — umap_rand_read's loops (timed) and checks
// (untimed). The loop and its checksum are file_rand_read_cold's, so the two
// cases' figures compare directly: what the umap layer adds (or saves) over
// a file region of the runtime's own API shows as the difference.
#include "umap_workloads.h"

#include "file_mappers.h"
#include "umap_mapper.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

namespace bench {

namespace {

constexpr size_t kStride = 512;

// The sum of eight 8-byte loads, 512 bytes apart, weighted by the page's
// index (as file_workloads.cc): exactly these loads (`volatile`).
inline uint64_t load_page(const char* page, size_t index)
{
    uint64_t sum = 0;
    for (size_t k = 0; k < page_size(); k += kStride)
        sum += *reinterpret_cast<const volatile uint64_t*>(page + k);
    return sum * (2 * index + 1);
}

// The pages' bytes as the file must hold them, and their checksum.
uint64_t expected_sum(const TestFile& file, const std::vector<uint32_t>& pages, const char* mapped)
{
    std::vector<char> want(page_size());
    uint64_t sum = 0;
    for (uint32_t page : pages) {
        const size_t off = size_t(page) * page_size();
        file.expected(off, page_size(), want.data());
        if (mapped && memcmp(mapped + off, want.data(), page_size()) != 0)
            fail("read through umap: file page " + std::to_string(page) + " differs from the file");
        sum += load_page(want.data(), page);
    }
    return sum;
}

void check_sum(uint64_t got, uint64_t want, const std::string& where)
{
    if (got != want)
        fail(where + ": the timed loop's checksum is " + std::to_string(got) + ", the file's " + std::to_string(want));
}

} // namespace

FileCase umap_rand_read(std::string name, std::shared_ptr<TestFile> file, size_t reads)
{
    // file_rand_read_cold's order: the first `reads` pages of the same
    // fixed shuffle of every page.
    auto order = std::make_shared<std::vector<uint32_t>>(file->pages());
    for (size_t i = 0; i < order->size(); ++i)
        (*order)[i] = uint32_t(i);
    std::shuffle(order->begin(), order->end(), std::mt19937_64(0x5eed));
    order->resize(std::min(reads, order->size()));
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
    w.verify = [file, order, sum](const char* base) {
        check_sum(*sum, expected_sum(*file, *order, base), "read through umap");
    };
    auto reader = std::make_unique<UringReader>(file);
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
        check_sum(*sum, expected_sum(*file, *order, nullptr), "io_uring reads");
    };
    c.faultline = std::make_unique<UmapMapper>(file);
    c.baseline = std::move(reader);
    return c;
}

} // namespace bench
