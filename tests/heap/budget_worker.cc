// A program for the heap budget test (heap_budget_test.cc), run under
// `faultline run --budget`: a heap of `heap_mib` in 64 KiB blocks, of which
// the first `hot_mib` are rewritten round after round while 8 threads
// allocate, fill, check and free blocks of their own. Every block carries a
// pattern of its index and generation, checked before each rewrite and at
// the end: a lost write or a page from the wrong swap slot fails it. Then
// everything is freed (the heap's slots must come back), and the heap's
// statistics are printed as JSON on the last line. Exit 0 only if every
// check held.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kBlock = 64 * 1024;
std::atomic<long> g_bad { 0 };

void fill(unsigned char* p, size_t bytes, size_t index, unsigned gen)
{
    for (size_t at = 0; at < bytes; at += 512)
        p[at] = static_cast<unsigned char>(index * 131 + at / 512 * 7 + gen * 29 + 1);
}

bool check(const unsigned char* p, size_t bytes, size_t index, unsigned gen)
{
    for (size_t at = 0; at < bytes; at += 512)
        if (p[at] != static_cast<unsigned char>(index * 131 + at / 512 * 7 + gen * 29 + 1))
            return false;
    return true;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s HEAP_MIB HOT_MIB ROUNDS\n", argv[0]);
        return 2;
    }
    const size_t blocks = size_t(atol(argv[1])) * 1024 * 1024 / kBlock;
    const size_t hot = size_t(atol(argv[2])) * 1024 * 1024 / kBlock;
    const int rounds = atoi(argv[3]);
    // Where the heap is, first, for the test to sample its resident size.
    using Range = int (*)(void**, size_t*);
    void* base = nullptr;
    size_t size = 0;
    if (auto range = reinterpret_cast<Range>(dlsym(RTLD_DEFAULT, "faultline_heap_range")); !range || range(&base, &size) != 0)
        return 4;
    printf("heap %lx %zx\n", (unsigned long)base, size);
    fflush(stdout);
    std::vector<unsigned char*> heap(blocks);
    std::vector<unsigned> gen(blocks, 1);
    for (size_t i = 0; i < blocks; ++i) {
        heap[i] = static_cast<unsigned char*>(malloc(kBlock));
        if (!heap[i])
            return 3;
        fill(heap[i], kBlock, i, 1);
    }
    std::atomic<bool> stop { false };
    std::vector<std::thread> churn;
    for (int t = 0; t < 8; ++t)
        churn.emplace_back([&, t] {
            std::mt19937 rng { unsigned(t) };
            std::vector<std::pair<unsigned char*, size_t>> mine;
            while (!stop.load(std::memory_order_relaxed)) {
                const size_t bytes = 512 + rng() % (32 * 1024);
                auto* p = static_cast<unsigned char*>(malloc(bytes));
                if (!p) {
                    ++g_bad;
                    return;
                }
                fill(p, bytes, mine.size() + size_t(t) * 1000, 3);
                mine.push_back({ p, bytes });
                if (mine.size() > 16) {
                    const size_t k = rng() % mine.size();
                    if (!check(mine[k].first, mine[k].second, k + size_t(t) * 1000, 3))
                        ++g_bad;
                    free(mine[k].first);
                    mine[k] = mine.back();
                    mine.pop_back();
                    // The moved block keeps its own index in its pattern.
                    if (k < mine.size())
                        fill(mine[k].first, mine[k].second, k + size_t(t) * 1000, 3);
                }
            }
            for (size_t k = 0; k < mine.size(); ++k) {
                if (!check(mine[k].first, mine[k].second, k + size_t(t) * 1000, 3))
                    ++g_bad;
                free(mine[k].first);
            }
        });
    for (int r = 0; r < rounds; ++r)
        for (size_t i = 0; i < hot; ++i) {
            if (!check(heap[i], kBlock, i, gen[i]))
                ++g_bad;
            fill(heap[i], kBlock, i, ++gen[i]);
        }
    stop = true;
    for (auto& t : churn)
        t.join();
    for (size_t i = 0; i < blocks; ++i) {
        if (!check(heap[i], kBlock, i, gen[i]))
            ++g_bad;
        free(heap[i]);
    }
    // Freed memory is returned by the allocator after a short delay: give
    // it time, and allocate once more so it runs its deferred work.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    free(malloc(kBlock));
    using Json = size_t (*)(char*, size_t);
    auto json = reinterpret_cast<Json>(dlsym(RTLD_DEFAULT, "faultline_heap_json"));
    if (json) {
        std::string text(json(nullptr, 0) + 1, '\0');
        json(text.data(), text.size());
        printf("%s\n", text.c_str());
    }
    printf("bad %ld\n", g_bad.load());
    return g_bad.load() == 0 ? 0 : 1;
}
