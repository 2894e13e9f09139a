// bench/workloads.cc — the touch loops (timed) and their read-back checks
// (untimed).
//
// Every written page gets one byte whose offset and value depend on the
// page's index. The check then reads every touched page back in full: the
// byte must be there and every other byte must be zero. That catches a page
// installed at the wrong address, a page installed twice (the second copy
// would erase the byte), and a page that was not zero-filled.
#include "workloads.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace bench {

namespace {

size_t offset_of(size_t page) { return (page * 67) & (page_size() - 1); }
// Never zero, so a missing write cannot pass for a correct one.
char value_of(size_t page) { return char(uint8_t(page * 131 + 17) | 1); }

const char* zeros()
{
    static const std::vector<char> buffer(page_size(), 0);
    return buffer.data();
}

// `volatile` keeps the compiler from merging, reordering across pages or
// vectorising the stores: the loop must make exactly one access per page,
// in the stated order.
inline void write_page(char* base, size_t page)
{
    volatile char* p = base + page * page_size();
    p[offset_of(page)] = value_of(page);
}

void check_written_page(const char* base, size_t page)
{
    const size_t ps = page_size();
    const char* p = base + page * ps;
    const size_t off = offset_of(page);
    if (p[off] != value_of(page))
        fail("page " + std::to_string(page) + ": byte " + std::to_string(off) + " reads " +
             std::to_string(int(uint8_t(p[off]))) + ", expected " + std::to_string(int(uint8_t(value_of(page)))));
    if (memcmp(p, zeros(), off) != 0 || memcmp(p + off + 1, zeros(), ps - off - 1) != 0)
        fail("page " + std::to_string(page) + ": a byte that was never written is not zero");
}

void check_written_pages(const char* base, size_t pages)
{
    for (size_t i = 0; i < pages; ++i)
        check_written_page(base, i);
}

} // namespace

Workload seq_first_touch(std::string name, size_t bytes)
{
    const size_t pages = bytes / page_size();
    Workload w;
    w.name = std::move(name);
    w.unit = "ns/page";
    w.bytes = bytes;
    w.units = pages;
    w.run = [pages](char* base) {
        uint64_t t0 = now_ns();
        for (size_t i = 0; i < pages; ++i)
            write_page(base, i);
        return now_ns() - t0;
    };
    w.verify = [pages](const char* base) { check_written_pages(base, pages); };
    return w;
}

Workload rand_first_touch(std::string name, size_t bytes)
{
    const size_t pages = bytes / page_size();
    // Built once, outside the timed loop, and shared by every repetition of
    // both sides, so both walk the same order. A fixed seed keeps runs
    // comparable with each other.
    auto order = std::make_shared<std::vector<uint32_t>>(pages);
    for (size_t i = 0; i < pages; ++i)
        (*order)[i] = uint32_t(i);
    std::shuffle(order->begin(), order->end(), std::mt19937_64(0x5eed));
    Workload w;
    w.name = std::move(name);
    w.unit = "ns/page";
    w.bytes = bytes;
    w.units = pages;
    w.run = [order](char* base) {
        const uint32_t* o = order->data();
        const size_t n = order->size();
        uint64_t t0 = now_ns();
        for (size_t i = 0; i < n; ++i)
            write_page(base, o[i]);
        return now_ns() - t0;
    };
    w.verify = [pages](const char* base) { check_written_pages(base, pages); };
    return w;
}

Workload mt_first_touch(std::string name, size_t bytes, unsigned threads)
{
    const size_t pages = bytes / page_size();
    Workload w;
    w.name = std::move(name);
    w.unit = "ns/page";
    w.bytes = bytes;
    w.units = pages;
    w.threads = threads;
    w.run = [pages, threads](char* base) {
        std::atomic<unsigned> ready { 0 };
        std::atomic<bool> go { false };
        std::vector<uint64_t> start(threads), end(threads);
        std::vector<std::thread> workers;
        for (unsigned t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                const size_t first = pages * t / threads;
                const size_t last = pages * (t + 1) / threads;
                ready.fetch_add(1);
                go.wait(false);
                start[t] = now_ns();
                for (size_t i = first; i < last; ++i)
                    write_page(base, i);
                end[t] = now_ns();
            });
        }
        // Thread creation is not part of the measurement: release them all
        // at once, only after each is waiting.
        while (ready.load() < threads)
            std::this_thread::yield();
        go.store(true);
        go.notify_all();
        for (auto& worker : workers)
            worker.join();
        // Wall time of the whole job, from the first thread's start to the
        // last thread's end: what an application would wait for.
        return *std::max_element(end.begin(), end.end()) - *std::min_element(start.begin(), start.end());
    };
    w.verify = [pages](const char* base) { check_written_pages(base, pages); };
    return w;
}

Workload read_zero(std::string name, size_t bytes)
{
    const size_t pages = bytes / page_size();
    // The sum of every byte read: it must come out zero. Shared between the
    // timed loop and the check that follows it.
    auto sum = std::make_shared<uint64_t>(0);
    Workload w;
    w.name = std::move(name);
    w.unit = "ns/page";
    w.bytes = bytes;
    w.units = pages;
    w.run = [pages, sum](char* base) {
        uint64_t total = 0;
        uint64_t t0 = now_ns();
        for (size_t i = 0; i < pages; ++i) {
            volatile const char* p = base + i * page_size();
            total += uint8_t(p[offset_of(i)]);
        }
        uint64_t elapsed = now_ns() - t0;
        *sum = total;
        return elapsed;
    };
    w.verify = [pages, sum](const char* base) {
        if (*sum != 0)
            fail("reading fresh pages summed to " + std::to_string(*sum) + ", expected 0");
        for (size_t i = 0; i < pages; ++i)
            if (memcmp(base + i * page_size(), zeros(), page_size()) != 0)
                fail("page " + std::to_string(i) + " of a never-written region is not zero");
    };
    return w;
}

Workload sparse_touch(std::string name, size_t faults, size_t stride_pages)
{
    Workload w;
    w.name = std::move(name);
    w.unit = "ns/fault";
    w.bytes = faults * stride_pages * page_size();
    w.units = faults;
    w.sparse = true;
    w.run = [faults, stride_pages](char* base) {
        uint64_t t0 = now_ns();
        for (size_t i = 0; i < faults; ++i)
            write_page(base, i * stride_pages);
        return now_ns() - t0;
    };
    // Only the touched pages are read back: reading the ones in between
    // would fault each of them in, which costs far more than the case itself.
    w.verify = [faults, stride_pages](const char* base) {
        for (size_t i = 0; i < faults; ++i)
            check_written_page(base, i * stride_pages);
    };
    return w;
}

} // namespace bench
