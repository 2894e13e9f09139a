// Purgeable memory through the C API (-errno, handles) and in to_json().
#include <faultline/faultline.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace {
constexpr size_t kPage = 4096;

int veto_none(const faultline_purge_event*, void* user)
{
    ++*static_cast<int*>(user);
    return 1;
}

int zeros_for_everyone(void*, void*) { return 1; }
} // namespace

#define CREATE_OR_SKIP(rt, config)                                                        \
    faultline_runtime_t rt = 0;                                                           \
    if (int rc_ = faultline_create(config, &rt); rc_ < 0)                                 \
    GTEST_SKIP() << "userfaultfd unavailable: " << faultline_last_error()

TEST(PurgeableCApi, VolatileRoundTrip)
{
    faultline_config config {};
    config.commit_limit = 64 * kPage;
    CREATE_OR_SKIP(rt, &config);
    void* p = nullptr;
    ASSERT_EQ(faultline_allocate_purgeable(rt, 16 * kPage, nullptr, &p), 0);
    memset(p, 4, 16 * kPage);
    ASSERT_EQ(faultline_set_volatile(rt, p, 8 * kPage, FAULTLINE_PURGE_NORMAL), 0);
    faultline_region_stats st {};
    ASSERT_EQ(faultline_get_region_stats(rt, p, &st), 0);
    EXPECT_EQ(st.volatile_bytes, 8 * kPage);
    EXPECT_EQ(st.volatile_resident, 8 * kPage);
    EXPECT_EQ(st.nonvolatile_resident, 8 * kPage);
    int before = 0;
    ASSERT_EQ(faultline_set_purge_callbacks(rt, veto_none, nullptr, &before), 0);
    size_t purged = 0;
    ASSERT_EQ(faultline_purge(rt, FAULTLINE_PURGE_ALL, &purged), 0);
    EXPECT_EQ(purged, 8 * kPage);
    EXPECT_EQ(before, 1);
    faultline_purge_stats ps {};
    ASSERT_EQ(faultline_get_purge_stats(rt, &ps), 0);
    EXPECT_EQ(ps.purges, 1u);
    EXPECT_EQ(ps.purged_bytes, 8 * kPage);
    EXPECT_EQ(ps.volatile_bytes, 8 * kPage);

    // The JSON report carries the region's and the runtime's figures.
    long need = faultline_to_json(rt, nullptr, 0);
    std::string json(size_t(need) + 1, '\0');
    ASSERT_EQ(faultline_to_json(rt, json.data(), json.size()), need);
    EXPECT_NE(json.find("\"purgeable\":true"), std::string::npos);
    EXPECT_NE(json.find("\"volatility\":{\"volatile_bytes\":32768,"), std::string::npos) << json;
    EXPECT_NE(json.find("\"purge\":{\"volatile_bytes\":32768,"), std::string::npos) << json;
    EXPECT_NE(json.find("\"purged_bytes\":32768"), std::string::npos);

    faultline_page_range ranges[4];
    size_t count = 0;
    EXPECT_EQ(faultline_set_nonvolatile(rt, p, 16 * kPage, ranges, 4, &count), 1);
    ASSERT_EQ(count, 1u);
    EXPECT_EQ(ranges[0].address, p);
    EXPECT_EQ(ranges[0].size, 8 * kPage);
    EXPECT_EQ(faultline_set_nonvolatile(rt, p, 16 * kPage, nullptr, 0, &count), 0);
    EXPECT_EQ(count, 0u);
    EXPECT_EQ(faultline_destroy(rt), 0);
}

TEST(PurgeableCApi, ErrnoValues)
{
    CREATE_OR_SKIP(rt, nullptr);
    void* p = nullptr;
    void* plain = nullptr;
    ASSERT_EQ(faultline_allocate_purgeable(rt, 4 * kPage, nullptr, &p), 0);
    ASSERT_EQ(faultline_map(rt, nullptr, kPage, FAULTLINE_ACCESS_READ, 0, nullptr, &plain), 0);
    EXPECT_EQ(faultline_allocate_purgeable(rt, 4 * kPage, nullptr, nullptr), -EINVAL);
    faultline_purgeable_options bad {};
    bad.purged_access = 7;
    EXPECT_EQ(faultline_allocate_purgeable(rt, kPage, &bad, &p), -EINVAL);
    bad.purged_access = FAULTLINE_PURGED_CALLBACK; // without a callback
    EXPECT_EQ(faultline_allocate_purgeable(rt, kPage, &bad, &p), -EINVAL);
    bad.flags = FAULTLINE_REGION_SHARED;
    bad.purged_access = FAULTLINE_PURGED_ZERO;
    EXPECT_EQ(faultline_allocate_purgeable(rt, kPage, &bad, &p), -EINVAL);
    EXPECT_EQ(faultline_set_volatile(rt, p, kPage, 9), -EINVAL);
    EXPECT_EQ(faultline_set_volatile(rt, static_cast<char*>(p) + 1, kPage, 0), -EINVAL);
    EXPECT_EQ(faultline_set_volatile(rt, plain, kPage, 0), -EINVAL);
    EXPECT_EQ(faultline_set_nonvolatile(rt, p, kPage, nullptr, 3, nullptr), -EINVAL);
    EXPECT_EQ(faultline_purge(rt, 0, nullptr), -EINVAL);
    EXPECT_EQ(faultline_get_purge_stats(rt, nullptr), -EINVAL);
    faultline_purgeable_options cb {};
    cb.purged_access = FAULTLINE_PURGED_CALLBACK;
    cb.on_purged_access = zeros_for_everyone;
    void* q = nullptr;
    ASSERT_EQ(faultline_allocate_purgeable(rt, kPage, &cb, &q), 0);
    static_cast<char*>(q)[0] = 1;
    ASSERT_EQ(faultline_set_volatile(rt, q, kPage, FAULTLINE_PURGE_OBSOLETE), 0);
    ASSERT_EQ(faultline_purge(rt, 1, nullptr), 0);
    EXPECT_EQ(static_cast<char*>(q)[0], 0);
    ASSERT_EQ(faultline_unmap(rt, p, kPage), 0);
    EXPECT_EQ(faultline_set_volatile(rt, p, 2 * kPage, 0), -ENOENT);
    EXPECT_EQ(faultline_make_immutable(rt, static_cast<char*>(p) + 2 * kPage, kPage), 0);
    EXPECT_EQ(faultline_set_volatile(rt, static_cast<char*>(p) + 2 * kPage, kPage, 0), -EPERM);
    EXPECT_EQ(faultline_destroy(rt), 0);
    EXPECT_EQ(faultline_purge(rt, 1, nullptr), -EBADF);
}
