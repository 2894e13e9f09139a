// The C API: handles, -errno, use after destruction.
#include <faultline/faultline.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

namespace {
constexpr size_t kPage = 4096;
}

#define CREATE_OR_SKIP(rt)                                                                \
    faultline_runtime_t rt = 0;                                                           \
    if (int rc_ = faultline_create(nullptr, &rt); rc_ < 0)                                \
    GTEST_SKIP() << "userfaultfd unavailable: " << faultline_last_error()

TEST(CApi, MapTouchStatsUnmap)
{
    CREATE_OR_SKIP(rt);
    void* p = nullptr;
    ASSERT_EQ(faultline_map(rt, nullptr, 8 * kPage, FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE, 0, "c", &p), 0);
    memset(p, 9, 8 * kPage);
    faultline_region_stats st {};
    ASSERT_EQ(faultline_get_region_stats(rt, p, &st), 0);
    EXPECT_EQ(st.size, 8 * kPage);
    EXPECT_EQ(st.amount_resident, 8 * kPage);
    long need = faultline_to_json(rt, nullptr, 0);
    ASSERT_GT(need, 0);
    std::string buf(size_t(need) + 1, '\0');
    EXPECT_EQ(faultline_to_json(rt, buf.data(), buf.size()), need);
    EXPECT_NE(buf.find("\"name\":\"c\""), std::string::npos);
    char small[8];
    EXPECT_EQ(faultline_to_json(rt, small, sizeof small), need);
    EXPECT_EQ(strlen(small), 7u);
    // discard: the dropped pages read zeros again, the others keep theirs.
    EXPECT_EQ(faultline_discard(rt, static_cast<char*>(p) + 2 * kPage, 2 * kPage), 0);
    for (size_t i = 0; i < 8 * kPage; i += 512)
        ASSERT_EQ(static_cast<char*>(p)[i], (i >= 2 * kPage && i < 4 * kPage) ? 0 : 9) << i;
    EXPECT_EQ(faultline_protect(rt, p, 8 * kPage, FAULTLINE_ACCESS_READ), 0);
    EXPECT_EQ(faultline_set_name(rt, p, 8 * kPage, "renamed"), 0);
    EXPECT_EQ(faultline_unmap(rt, p, 8 * kPage), 0);
    EXPECT_EQ(faultline_destroy(rt), 0);
}

TEST(CApi, ErrnoValues)
{
    CREATE_OR_SKIP(rt);
    void* p = nullptr;
    EXPECT_EQ(faultline_map(rt, nullptr, 0, 3, 0, nullptr, &p), -EINVAL);
    EXPECT_EQ(faultline_map(rt, nullptr, 100, 3, 0, nullptr, &p), -EINVAL);
    EXPECT_EQ(faultline_map(rt, nullptr, kPage, 7, 0, nullptr, &p), -EACCES);
    EXPECT_EQ(faultline_map(rt, nullptr, kPage, 3, 0, nullptr, nullptr), -EINVAL);
    ASSERT_EQ(faultline_map(rt, nullptr, kPage, 3, FAULTLINE_REGION_IMMUTABLE, nullptr, &p), 0);
    EXPECT_EQ(faultline_unmap(rt, p, kPage), -EPERM);
    EXPECT_EQ(faultline_make_immutable(rt, p, kPage), -EPERM);
    EXPECT_NE(std::string(faultline_last_error()).find("immutable"), std::string::npos);
    EXPECT_EQ(faultline_discard(rt, p, kPage), -EPERM);
    void* q = nullptr;
    ASSERT_EQ(faultline_map(rt, nullptr, kPage, 3, 0, nullptr, &q), 0);
    EXPECT_EQ(faultline_discard(rt, static_cast<char*>(q) + 1, kPage), -EINVAL);
    EXPECT_EQ(faultline_discard(rt, q, 0), -EINVAL);
    EXPECT_EQ(faultline_unmap(rt, q, kPage), 0);
    EXPECT_EQ(faultline_unmap(rt, q, kPage), -ENOENT);
    EXPECT_EQ(faultline_discard(rt, q, kPage), -ENOENT);
    faultline_region_stats st;
    EXPECT_EQ(faultline_get_region_stats(rt, q, &st), -ENOENT);
    EXPECT_EQ(faultline_get_region_stats(rt, q, nullptr), -EINVAL);
    EXPECT_EQ(faultline_destroy(rt), 0);
}

TEST(CApi, UseAfterDestroyIsEBADF)
{
    CREATE_OR_SKIP(rt);
    void* p = nullptr;
    ASSERT_EQ(faultline_map(rt, nullptr, kPage, 3, 0, nullptr, &p), 0);
    ASSERT_EQ(faultline_destroy(rt), 0);
    EXPECT_EQ(faultline_destroy(rt), -EBADF);
    EXPECT_EQ(faultline_unmap(rt, p, kPage), -EBADF);
    EXPECT_EQ(faultline_protect(rt, p, kPage, 1), -EBADF);
    EXPECT_EQ(faultline_set_name(rt, p, kPage, "x"), -EBADF);
    EXPECT_EQ(faultline_make_immutable(rt, p, kPage), -EBADF);
    EXPECT_EQ(faultline_discard(rt, p, kPage), -EBADF);
    void* q;
    EXPECT_EQ(faultline_map(rt, nullptr, kPage, 3, 0, nullptr, &q), -EBADF);
    faultline_region_stats st;
    EXPECT_EQ(faultline_get_region_stats(rt, p, &st), -EBADF);
    EXPECT_EQ(faultline_to_json(rt, nullptr, 0), -EBADF);
    EXPECT_EQ(faultline_unmap(0, p, kPage), -EBADF);
    // A new runtime never reuses the old handle.
    CREATE_OR_SKIP(rt2);
    EXPECT_NE(rt2, rt);
    EXPECT_EQ(faultline_unmap(rt, p, kPage), -EBADF);
    EXPECT_EQ(faultline_destroy(rt2), 0);
}

TEST(CApi, DestroyRacingCalls)
{
    for (int round = 0; round < 10; ++round) {
        CREATE_OR_SKIP(rt);
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([rt] {
                for (int i = 0; i < 200; ++i) {
                    void* p;
                    int rc = faultline_map(rt, nullptr, kPage, 3, 0, nullptr, &p);
                    if (rc == -EBADF)
                        return;
                    ASSERT_EQ(rc, 0);
                    // No touch here: the runtime may be destroyed between
                    // these calls, and memory of a destroyed runtime is gone.
                    rc = faultline_unmap(rt, p, kPage);
                    ASSERT_TRUE(rc == 0 || rc == -EBADF) << rc;
                }
            });
        }
        std::this_thread::yield();
        EXPECT_EQ(faultline_destroy(rt), 0);
        for (auto& t : threads)
            t.join();
    }
}

TEST(CApi, BadConfig)
{
    faultline_config c {};
    c.arena_size = 12345;
    faultline_runtime_t rt;
    EXPECT_EQ(faultline_create(&c, &rt), -EINVAL);
    EXPECT_EQ(faultline_create(nullptr, nullptr), -EINVAL);
}

TEST(CApi, MapFileSyncAndErrno)
{
    CREATE_OR_SKIP(rt);
    char path[] = "/tmp/faultline-capi-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    std::vector<char> data(3 * kPage + 10);
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = char(i * 13 + 1);
    ASSERT_EQ(pwrite(fd, data.data(), data.size(), 0), ssize_t(data.size()));
    void* p = nullptr;
    ASSERT_EQ(faultline_map_file(rt, fd, 0, data.size(), FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE,
                  FAULTLINE_FILE_SHARED, "file", &p),
        0)
        << faultline_last_error();
    auto* c = static_cast<char*>(p);
    EXPECT_EQ(memcmp(c, data.data(), data.size()), 0);
    c[kPage] = 'W';
    faultline_region_stats st {};
    ASSERT_EQ(faultline_get_region_stats(rt, p, &st), 0);
    EXPECT_GE(st.file_bytes_read, data.size());
    EXPECT_GE(st.inode_faults, 1u);
    EXPECT_EQ(faultline_sync(rt, p, 4 * kPage, FAULTLINE_SYNC), 0) << faultline_last_error();
    char back = 0;
    ASSERT_EQ(pread(fd, &back, 1, off_t(kPage)), 1);
    EXPECT_EQ(back, 'W');
    // A private view does not write the file.
    void* q = nullptr;
    ASSERT_EQ(faultline_map_file(rt, fd, 0, data.size(), FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE,
                  FAULTLINE_FILE_PRIVATE, nullptr, &q),
        0);
    static_cast<char*>(q)[0] = 'P';
    EXPECT_EQ(c[0], data[0]);
    // Errno values, and the message each sets.
    void* none = nullptr;
    EXPECT_EQ(faultline_map_file(rt, -1, 0, kPage, FAULTLINE_ACCESS_READ, 0, nullptr, &none), -EBADF);
    EXPECT_EQ(faultline_map_file(rt, fd, 1, kPage, FAULTLINE_ACCESS_READ, 0, nullptr, &none), -EINVAL);
    EXPECT_EQ(faultline_map_file(rt, fd, 0, kPage, FAULTLINE_ACCESS_READ, 0x80, nullptr, &none), -EINVAL);
    EXPECT_NE(strstr(faultline_last_error(), "flags"), nullptr);
    EXPECT_EQ(faultline_map_file(rt, fd, 0, kPage, 0x100, 0, nullptr, &none), -EINVAL);
    EXPECT_EQ(faultline_map_file(rt, fd, 0, kPage, FAULTLINE_ACCESS_READ, 0, nullptr, nullptr), -EINVAL);
    EXPECT_EQ(faultline_sync(rt, q, kPage, 64), -EINVAL);
    EXPECT_EQ(faultline_destroy(rt), 0);
    close(fd);
    unlink(path);
}
