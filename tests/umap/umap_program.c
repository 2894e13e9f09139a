/* A program written for umap, as umap's own tests are: its own main, only
 * <umap/umap.h> from the library, linked with libfaultline-umap. It maps a
 * real file 16 times larger than its buffer (UMAP_BUFSIZE, set before the
 * first umap call, as a user would in the shell), reads every byte, writes
 * some pages, and checks with pread(2) that umap_flush() and uunmap() put
 * exactly those bytes in the file. Exit 0 = pass, 1 = fail, 77 = skipped
 * (no userfaultfd here). */
#include <umap/umap.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGES 256
#define BUFFER_PAGES 16

static int failures;

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "umap-program: FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                         \
            fputc('\n', stderr);                                  \
            failures++;                                           \
        }                                                         \
    } while (0)

static unsigned char original(size_t i) { return (unsigned char)((i * 131u + (i >> 12) * 7u) ^ 0x5a); }

/* What the file must hold after the writes below. */
static unsigned char expected(size_t i, size_t page_size)
{
    size_t page = i / page_size, in = i % page_size;
    if (page % 3 == 0 && in < 512)
        return (unsigned char)(page + in);
    if (page % 5 == 1 && in == page_size - 1)
        return 0xee;
    return original(i);
}

int main(void)
{
    /* Before the first umap call, as `UMAP_BUFSIZE=16 ./program` would. */
    setenv("UMAP_BUFSIZE", "16", 1);
    setenv("UMAP_PAGE_FILLERS", "2", 1);

    const size_t psize = (size_t)umapcfg_get_umap_page_size();
    CHECK(psize == (size_t)sysconf(_SC_PAGESIZE), "umap page size %zu", psize);
    CHECK(umapcfg_get_max_pages_in_buffer() == BUFFER_PAGES, "buffer %llu pages",
        (unsigned long long)umapcfg_get_max_pages_in_buffer());
    CHECK(umap_has_write_support() == 1, "write support");
    const size_t size = PAGES * psize;

    const char* dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/umap-program-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    unlink(path);
    unsigned char* bytes = malloc(size);
    for (size_t i = 0; i < size; ++i)
        bytes[i] = original(i);
    if (pwrite(fd, bytes, size, 0) != (ssize_t)size) {
        perror("pwrite");
        return 1;
    }

    /* Flags umap does not support are refused with EINVAL, not abort(). */
    errno = 0;
    CHECK(umap(NULL, size, PROT_READ, MAP_SHARED, fd, 0) == UMAP_FAILED && errno == EINVAL, "MAP_SHARED: errno %d", errno);
    errno = 0;
    CHECK(umap(NULL, size, PROT_READ, UMAP_PRIVATE | MAP_ANONYMOUS, fd, 0) == UMAP_FAILED && errno == EINVAL,
        "MAP_ANONYMOUS: errno %d", errno);

    unsigned char* p = umap(NULL, size, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd, 0);
    if (p == UMAP_FAILED) {
        int e = errno;
        fprintf(stderr, "umap-program: umap failed: %s\n", strerror(e));
        /* 77: skipped — no userfaultfd, or (EOPNOTSUPP) no write-protect and
         * minor faults on shared memory, which a writable region under
         * UMAP_BUFSIZE needs (docs/umap.md). */
        return e == EPERM || e == ENOSYS || e == EOPNOTSUPP ? 77 : 1;
    }
    CHECK((uintptr_t)p % psize == 0, "region not aligned to the umap page");

    /* Every byte, twice: the second pass comes after the buffer has seen the
     * whole file (16 times its size). */
    for (int pass = 0; pass < 2; ++pass) {
        size_t bad = 0;
        for (size_t i = 0; i < size; ++i)
            bad += p[i] != original(i);
        CHECK(bad == 0, "pass %d: %zu bytes differ from the file", pass, bad);
    }

    /* Writes: the first 512 bytes of every third page... */
    for (size_t page = 0; page < PAGES; page += 3)
        for (size_t in = 0; in < 512; ++in)
            p[page * psize + in] = (unsigned char)(page + in);
    CHECK(umap_flush() == 0, "umap_flush: %s", strerror(errno));
    if (pread(fd, bytes, size, 0) != (ssize_t)size) {
        perror("pread");
        return 1;
    }
    {
        size_t bad = 0;
        for (size_t i = 0; i < size; ++i) {
            size_t page = i / psize, in = i % psize;
            unsigned char want = (page % 3 == 0 && in < 512) ? (unsigned char)(page + in) : original(i);
            bad += bytes[i] != want;
        }
        CHECK(bad == 0, "after umap_flush: %zu bytes of the file are wrong", bad);
    }

    /* ...and the last byte of pages 1, 6, 11, ... left to uunmap. */
    for (size_t page = 1; page < PAGES; page += 5)
        p[page * psize + psize - 1] = 0xee;
    {
        size_t bad = 0;
        for (size_t i = 0; i < size; ++i)
            bad += p[i] != expected(i, psize);
        CHECK(bad == 0, "reading back through the region: %zu bytes wrong", bad);
    }
    CHECK(uunmap(p, size) == 0, "uunmap: %s", strerror(errno));
    errno = 0;
    CHECK(uunmap(p, size) == -1 && errno == EINVAL, "a second uunmap: errno %d", errno);

    if (pread(fd, bytes, size, 0) != (ssize_t)size) {
        perror("pread");
        return 1;
    }
    {
        size_t bad = 0;
        for (size_t i = 0; i < size; ++i)
            bad += bytes[i] != expected(i, psize);
        CHECK(bad == 0, "after uunmap: %zu bytes of the file are wrong", bad);
    }

    /* A second mapping from an offset reads what the first one wrote. */
    unsigned char* q = umap(NULL, 8 * psize, PROT_READ, UMAP_PRIVATE, fd, (off_t)(30 * psize));
    CHECK(q != UMAP_FAILED, "umap at an offset: %s", strerror(errno));
    if (q != UMAP_FAILED) {
        size_t bad = 0;
        for (size_t i = 0; i < 8 * psize; ++i)
            bad += q[i] != expected(30 * psize + i, psize);
        CHECK(bad == 0, "offset mapping: %zu bytes wrong", bad);
        CHECK(uunmap(q, 8 * psize) == 0, "uunmap: %s", strerror(errno));
    }

    free(bytes);
    close(fd);
    if (failures) {
        fprintf(stderr, "umap-program: %d check(s) failed\n", failures);
        return 1;
    }
    puts("umap-program: all checks passed");
    return 0;
}
