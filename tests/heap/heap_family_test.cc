// The malloc family under libfaultline_malloc.so. This binary runs with the
// library preloaded (tests/meson.build): every test checks bytes, errno
// values and that the memory really is faultline memory.
#include "heap_support.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <unistd.h>

namespace faultline::heap_testing {
namespace {

TEST(HeapFamily, MallocIsInTheFaultlineHeap)
{
    ASSERT_HEAP_ACTIVE();
    for (size_t size : { size_t(1), size_t(24), size_t(4096), size_t(1) << 20, size_t(64) << 20 }) {
        void* p = malloc(size);
        ASSERT_NE(p, nullptr) << size;
        EXPECT_TRUE(in_heap(p, size)) << size << " bytes at " << p;
        EXPECT_EQ(uintptr_t(p) % alignof(max_align_t), 0u);
        EXPECT_GE(malloc_usable_size(p), size);
        std::memset(p, 0xab, size);
        free(p);
    }
}

TEST(HeapFamily, FaultsAreServedByTheRuntime)
{
    ASSERT_HEAP_ACTIVE();
    const uint64_t before = heap_counter("pages_installed");
    // More than any test allocated before, all live at once: most of it
    // has never been touched, and each first touch is a fault the runtime
    // serves.
    const size_t size = size_t(48) << 20;
    char* blocks[4];
    for (char*& p : blocks) {
        p = static_cast<char*>(malloc(size));
        ASSERT_NE(p, nullptr);
        ASSERT_TRUE(in_heap(p, size));
        for (size_t i = 0; i < size; i += 4096)
            p[i] = char(i >> 12);
    }
    for (char* p : blocks) {
        for (size_t i = 0; i < size; i += 4096)
            ASSERT_EQ(p[i], char(i >> 12));
        free(p);
    }
    EXPECT_GT(heap_counter("pages_installed"), before + (size >> 12));
}

TEST(HeapFamily, CallocZeroesAndRefusesOverflow)
{
    ASSERT_HEAP_ACTIVE();
    auto* p = static_cast<unsigned char*>(calloc(1000, 1000));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(in_heap(p, 1000000));
    for (size_t i = 0; i < 1000000; ++i)
        ASSERT_EQ(p[i], 0);
    free(p);
    volatile size_t half = SIZE_MAX / 2;
    errno = 0;
    EXPECT_EQ(calloc(half, 3), nullptr);
    EXPECT_EQ(errno, ENOMEM);
}

TEST(HeapFamily, AbsurdSizesAreEnomem)
{
    ASSERT_HEAP_ACTIVE();
    // Through volatile variables: the compiler knows what malloc(SIZE_MAX)
    // must return and would not ask the library.
    volatile size_t huge = SIZE_MAX, half = SIZE_MAX / 2, beyond_heap = size_t(1) << 46, near_max = SIZE_MAX - 10;
    errno = 0;
    EXPECT_EQ(malloc(huge), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(malloc(half), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    // Larger than the heap: cannot come from anywhere else.
    errno = 0;
    EXPECT_EQ(malloc(beyond_heap), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(reallocarray(nullptr, half, 4), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(pvalloc(near_max), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    // A failed realloc leaves the block as it was.
    auto* p = static_cast<char*>(malloc(64));
    ASSERT_NE(p, nullptr);
    std::memset(p, 'k', 64);
    errno = 0;
    EXPECT_EQ(realloc(p, half), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    for (int i = 0; i < 64; ++i)
        ASSERT_EQ(p[i], 'k');
    free(p);
}

TEST(HeapFamily, ReallocKeepsBytesGrowingAndShrinking)
{
    ASSERT_HEAP_ACTIVE();
    auto* p = static_cast<unsigned char*>(malloc(100));
    ASSERT_NE(p, nullptr);
    for (int i = 0; i < 100; ++i)
        p[i] = (unsigned char)i;
    for (size_t size : { size_t(1000), size_t(1) << 20, size_t(16) << 20, size_t(50), size_t(100000) }) {
        p = static_cast<unsigned char*>(realloc(p, size));
        ASSERT_NE(p, nullptr) << size;
        EXPECT_TRUE(in_heap(p, size));
        for (int i = 0; i < 50; ++i)
            ASSERT_EQ(p[i], (unsigned char)i) << "after realloc to " << size;
    }
    // realloc(p, 0) frees and returns NULL, as glibc does.
    EXPECT_EQ(realloc(p, 0), nullptr);
    // realloc(NULL, n) is malloc(n).
    void* q = realloc(nullptr, 64);
    ASSERT_NE(q, nullptr);
    EXPECT_TRUE(in_heap(q, 64));
    free(q);
    // reallocarray checks the product.
    auto* r = static_cast<int*>(reallocarray(nullptr, 10, sizeof(int)));
    ASSERT_NE(r, nullptr);
    r[9] = 7;
    r = static_cast<int*>(reallocarray(r, 1000, sizeof(int)));
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r[9], 7);
    free(r);
}

TEST(HeapFamily, AlignedAllocations)
{
    ASSERT_HEAP_ACTIVE();
    for (size_t align : { size_t(16), size_t(64), size_t(4096), size_t(65536), size_t(1) << 21 }) {
        void* p = nullptr;
        ASSERT_EQ(posix_memalign(&p, align, 1000), 0) << align;
        EXPECT_EQ(uintptr_t(p) % align, 0u) << align;
        EXPECT_TRUE(in_heap(p, 1000));
        free(p);
        void* a = aligned_alloc(align, 3 * align);
        ASSERT_NE(a, nullptr) << align;
        EXPECT_EQ(uintptr_t(a) % align, 0u);
        EXPECT_TRUE(in_heap(a, 3 * align));
        free(a);
        void* m = memalign(align, 10);
        ASSERT_NE(m, nullptr);
        EXPECT_EQ(uintptr_t(m) % align, 0u);
        free(m);
    }
    void* p = nullptr;
    EXPECT_EQ(posix_memalign(&p, 3, 10), EINVAL);
    EXPECT_EQ(posix_memalign(&p, 4, 10), EINVAL); // not a multiple of sizeof(void*)
    errno = 0;
    EXPECT_EQ(aligned_alloc(48, 96), nullptr);
    EXPECT_EQ(errno, EINVAL);
    // memalign rounds an alignment that is not a power of two up (glibc),
    // and takes one below 16 (0 included) as 16.
    void* m = memalign(48, 10);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(uintptr_t(m) % 64, 0u);
    free(m);
    for (size_t small : { size_t(0), size_t(1), size_t(3), size_t(8) }) {
        void* s = memalign(small, 24);
        ASSERT_NE(s, nullptr) << small;
        EXPECT_EQ(uintptr_t(s) % 16, 0u) << small;
        free(s);
    }
    errno = 0;
    EXPECT_EQ(memalign(SIZE_MAX / 2 + 2, 10), nullptr);
    EXPECT_EQ(errno, EINVAL);
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    void* v = valloc(10);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(uintptr_t(v) % page, 0u);
    EXPECT_TRUE(in_heap(v, 10));
    free(v);
    void* pv = pvalloc(page + 1);
    ASSERT_NE(pv, nullptr);
    EXPECT_EQ(uintptr_t(pv) % page, 0u);
    EXPECT_GE(malloc_usable_size(pv), 2 * page);
    free(pv);
    EXPECT_EQ(malloc_usable_size(nullptr), 0u);
    free(nullptr);
}

// The kernel writes into heap pages nobody touched yet (read(2) into a fresh
// buffer): the runtime serves those faults too (a full userfaultfd).
TEST(HeapFamily, KernelWritesIntoUntouchedHeapPages)
{
    ASSERT_HEAP_ACTIVE();
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const size_t size = size_t(4) << 20;
    auto* buffer = static_cast<char*>(malloc(size));
    ASSERT_NE(buffer, nullptr);
    char chunk[4096];
    std::memset(chunk, 'z', sizeof chunk);
    ASSERT_EQ(write(fds[1], chunk, sizeof chunk), ssize_t(sizeof chunk));
    // Into the middle of the buffer: an untouched page.
    ASSERT_EQ(read(fds[0], buffer + size / 2, sizeof chunk), ssize_t(sizeof chunk));
    EXPECT_EQ(std::memcmp(buffer + size / 2, chunk, sizeof chunk), 0);
    free(buffer);
    close(fds[0]);
    close(fds[1]);
}

} // namespace
} // namespace faultline::heap_testing
