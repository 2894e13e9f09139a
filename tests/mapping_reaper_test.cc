// MappingReaper against real memfd mappings, and what it means for a
// freeze: the replaced mapping shows the same bytes, is private, and no
// moved page table outlives the reaper or is inherited by a fork child.
#include "os/virtual_memory.h"
#include "runtime/mapping_reaper.h"
#include "support/threads.h"
#include "test_support.h"

#include <faultline/faultline.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

constexpr size_t kPage = 4096;

// Mappings in /proc/self/maps of the file with inode `inode`.
int mappings_of(ino_t inode)
{
    std::ifstream maps("/proc/self/maps");
    std::string line;
    int n = 0;
    while (std::getline(maps, line)) {
        std::istringstream in(line);
        std::string range, perms, offset, dev;
        unsigned long long ino = 0;
        in >> range >> perms >> offset >> dev >> ino;
        n += ino == inode;
    }
    return n;
}

bool has_thread_named(const std::string& name)
{
    for (const auto& [tid, n] : process_threads())
        if (n == name)
            return true;
    return false;
}

// A memfd of `pages` pages mapped shared, every page written with its
// number: what a live clonable region is.
struct SharedMemfd {
    int fd = -1;
    char* base = nullptr;
    size_t len = 0;
    ino_t inode = 0;

    explicit SharedMemfd(size_t pages)
        : len(pages * kPage)
    {
        fd = memfd_create("reaper-test", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, off_t(len)) != 0)
            return;
        void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            return;
        base = static_cast<char*>(p);
        for (size_t i = 0; i < pages; ++i)
            memset(base + i * kPage, char(i + 1), kPage);
        struct stat st {};
        fstat(fd, &st);
        inode = st.st_ino;
    }
    ~SharedMemfd()
    {
        if (base)
            munmap(base, len);
        if (fd >= 0)
            close(fd);
    }
    // Every page still reads its number through the mapping.
    size_t first_mismatch() const
    {
        for (size_t i = 0; i < len / kPage; ++i)
            if (base[i * kPage] != char(i + 1) || base[i * kPage + kPage - 1] != char(i + 1))
                return i;
        return len / kPage;
    }
    char in_file(size_t page) const
    {
        char c = 0;
        (void)!pread(fd, &c, 1, off_t(page * kPage));
        return c;
    }
};

#define SKIP_UNLESS_THE_KERNEL_MOVES_SHARED_TABLES()                                                         \
    if (!os::kernel_moves_shared_page_tables())                                                              \
    GTEST_SKIP() << "mremap(MREMAP_DONTUNMAP) of shared mappings is not available (5.13)"

TEST(MappingReaper, AReplacedMappingShowsTheSameBytesPrivatelyAndItsOldTablesGoLater)
{
    SKIP_UNLESS_THE_KERNEL_MOVES_SHARED_TABLES();
    SharedMemfd m(4096); // 16 MiB
    ASSERT_NE(m.base, nullptr);
    MappingReaper reaper(true);
    ASSERT_EQ(reaper.replace(uintptr_t(m.base), m.len, PROT_READ | PROT_WRITE, MAP_PRIVATE, m.fd, 0), 0);
    EXPECT_EQ(reaper.moved(), 1u) << "the page tables were not moved aside";
    EXPECT_EQ(m.first_mismatch(), m.len / kPage) << "a byte changed in the remap";
    // Private now: a write stays in the mapping.
    m.base[5 * kPage] = 'w';
    EXPECT_EQ(m.in_file(5), char(6)) << "a write reached the memfd after the remap";
    reaper.drain();
    // Named before it unmaps anything, so by now.
    EXPECT_TRUE(has_thread_named("faultline-reap")) << "the reaper's thread is not named like the runtime's others";
    EXPECT_EQ(reaper.pending_bytes(), 0u);
    EXPECT_EQ(mappings_of(m.inode), 1) << "the moved page tables are still mapped after drain()";
    EXPECT_EQ(m.base[5 * kPage], 'w');
}

TEST(MappingReaper, DisabledItTearsDownInTheCall)
{
    SharedMemfd m(64);
    ASSERT_NE(m.base, nullptr);
    MappingReaper reaper(false);
    ASSERT_EQ(reaper.replace(uintptr_t(m.base), m.len, PROT_READ | PROT_WRITE, MAP_PRIVATE, m.fd, 0), 0);
    EXPECT_EQ(reaper.moved(), 0u);
    EXPECT_EQ(m.first_mismatch(), m.len / kPage);
    EXPECT_EQ(mappings_of(m.inode), 1);
    m.base[0] = 'w';
    EXPECT_EQ(m.in_file(0), char(1));
}

TEST(MappingReaper, ARangeOfTwoMappingsIsRemappedInTheCall)
{
    SKIP_UNLESS_THE_KERNEL_MOVES_SHARED_TABLES();
    // mremap moves one mapping; a range the kernel keeps as two (here split
    // by a protection change) is remapped the plain way, bytes intact.
    SharedMemfd m(64);
    ASSERT_NE(m.base, nullptr);
    ASSERT_EQ(mprotect(m.base, kPage, PROT_READ), 0);
    MappingReaper reaper(true);
    ASSERT_EQ(reaper.replace(uintptr_t(m.base), m.len, PROT_READ | PROT_WRITE, MAP_PRIVATE, m.fd, 0), 0);
    EXPECT_EQ(reaper.moved(), 0u);
    EXPECT_EQ(m.first_mismatch(), m.len / kPage);
    EXPECT_EQ(mappings_of(m.inode), 1);
}

TEST(MappingReaper, ItsDestructionUnmapsEverythingMoved)
{
    SKIP_UNLESS_THE_KERNEL_MOVES_SHARED_TABLES();
    std::vector<std::unique_ptr<SharedMemfd>> maps;
    {
        MappingReaper reaper(true);
        for (int i = 0; i < 8; ++i) {
            maps.push_back(std::make_unique<SharedMemfd>(2048));
            ASSERT_NE(maps.back()->base, nullptr);
            ASSERT_EQ(reaper.replace(uintptr_t(maps.back()->base), maps.back()->len, PROT_READ, MAP_PRIVATE, maps.back()->fd, 0), 0);
        }
        EXPECT_EQ(reaper.moved(), 8u);
    }
    for (auto& m : maps) {
        EXPECT_EQ(mappings_of(m->inode), 1) << "a moved mapping outlived its reaper";
        EXPECT_EQ(m->first_mismatch(), m->len / kPage);
    }
}

TEST(MappingReaper, AForkChildInheritsNoMovedMapping)
{
    SKIP_UNLESS_THE_KERNEL_MOVES_SHARED_TABLES();
    // Several large ranges moved back to back, then fork at once: whether
    // each is still queued, being unmapped or gone when the fork comes, the
    // child must see only the replaced mappings, and both sides their bytes.
    std::vector<std::unique_ptr<SharedMemfd>> maps;
    for (int i = 0; i < 4; ++i) {
        maps.push_back(std::make_unique<SharedMemfd>(16384)); // 64 MiB each
        ASSERT_NE(maps.back()->base, nullptr);
    }
    MappingReaper reaper(true);
    for (auto& m : maps)
        ASSERT_EQ(reaper.replace(uintptr_t(m->base), m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE, m->fd, 0), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int bad = 0;
        for (auto& m : maps) {
            bad += mappings_of(m->inode) != 1;
            bad += m->first_mismatch() != m->len / kPage;
        }
#if !defined(__SANITIZE_THREAD__)
        // The child can go on replacing (a new thread of its own). Not
        // under ThreadSanitizer, which refuses new threads in the child of a
        // multi-threaded process.
        SharedMemfd more(256);
        bad += reaper.replace(uintptr_t(more.base), more.len, PROT_READ, MAP_PRIVATE, more.fd, 0) != 0;
        reaper.drain();
        bad += mappings_of(more.inode) != 1;
#endif
        _exit(bad);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the child inherited a moved mapping or saw wrong bytes";
    reaper.drain();
    for (auto& m : maps) {
        EXPECT_EQ(mappings_of(m->inode), 1);
        EXPECT_EQ(m->first_mismatch(), m->len / kPage);
    }
}

// The same through the runtime: a freeze (the first clone) leaves the two
// views and nothing else once the runtime is gone, and a fork right after
// a freeze of a large region gives the child both views' bytes and no
// moved mapping.
ino_t inode_mapped_at(const void* addr)
{
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        unsigned long start = 0, end = 0;
        unsigned long long ino = 0;
        char perms[8] = {}, dev[16] = {};
        unsigned long long offset = 0;
        if (sscanf(line.c_str(), "%lx-%lx %7s %llx %15s %llu", &start, &end, perms, &offset, dev, &ino) == 6
            && start <= uintptr_t(addr) && uintptr_t(addr) < end)
            return ino_t(ino);
    }
    return 0;
}

TEST(MappingReaper, AForkRightAfterAFreezeGivesTheChildBothViewsAndNothingMore)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 32768; // 128 MiB: its teardown takes milliseconds
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        a[i * kPage] = char(i);
    auto c = rt->clone(a);
    ASSERT_TRUE(c);
    auto* b = static_cast<char*>(*c);
    const ino_t inode = inode_mapped_at(a);
    ASSERT_NE(inode, 0u);
    ASSERT_EQ(inode_mapped_at(b), inode) << "the clone does not view the frozen memfd";
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int bad = mappings_of(inode) != 2;
        for (size_t i = 0; i < pages; ++i)
            bad += a[i * kPage] != char(i) || b[i * kPage] != char(i);
        _exit(bad > 250 ? 250 : bad);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the child saw a moved mapping or wrong bytes";
    a[0] = 'a';
    EXPECT_EQ(b[0], char(0));
    rt.reset(); // drains the reaper, unmaps both views
    EXPECT_EQ(mappings_of(inode), 0) << "a mapping of the frozen memfd outlived the runtime";
}

} // namespace
} // namespace faultline::testing
