// API contract: the C API refuses what the C++ enums cannot hold and names
// the latest error; a stack keeps a guard page below whatever is left of it
// after an unmap. (Statistics cost and vm.max_map_count: api_limits_test.cc.)
#include "segv_support.h"
#include "test_support.h"

#include <faultline/faultline.h>

#include <cerrno>
#include <cstring>
#include <string>

using namespace faultline;
using faultline::testing::kPage;
using faultline::testing::SegvCatcher;
using faultline::testing::try_read;
using faultline::testing::try_write;

namespace {

faultline_runtime_t create_or_zero()
{
    faultline_runtime_t handle = 0;
    return faultline_create(nullptr, &handle) == 0 ? handle : 0;
}

#define C_RUNTIME_OR_SKIP(var)                                                                           \
    const faultline_runtime_t var = create_or_zero();                                                     \
    if (var == 0)                                                                                         \
    GTEST_SKIP() << "userfaultfd unavailable: " << faultline_last_error()

constexpr unsigned kRW = FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE;

size_t count(const std::string& s, const std::string& what)
{
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1))
        ++n;
    return n;
}

std::string c_json(faultline_runtime_t handle)
{
    long need = faultline_to_json(handle, nullptr, 0);
    if (need <= 0)
        return {};
    std::string buf(size_t(need) + 1, '\0');
    faultline_to_json(handle, buf.data(), buf.size());
    buf.resize(size_t(need));
    return buf;
}

} // namespace

// Access bits beyond R|W|X used to be truncated to the C++ enum's 8 bits:
// 0x101 mapped a read-only region, 0x100 protected a range to PROT_NONE.
TEST(CApiContract, MapRefusesUnknownAccessBits)
{
    C_RUNTIME_OR_SKIP(rt);
    // Find a free spot to try a fixed map at.
    void* spot = nullptr;
    ASSERT_EQ(faultline_map(rt, nullptr, 4 * kPage, kRW, 0, nullptr, &spot), 0) << faultline_last_error();
    ASSERT_EQ(faultline_unmap(rt, spot, 4 * kPage), 0);

    void* const untouched = reinterpret_cast<void*>(uintptr_t(0x5a5a000));
    void* out = untouched;
    EXPECT_EQ(faultline_map(rt, nullptr, 4 * kPage, 0x101, 0, nullptr, &out), -EINVAL);
    EXPECT_EQ(out, untouched) << "a refused map must not hand out an address";
    EXPECT_EQ(faultline_map(rt, spot, 4 * kPage, 0x101, 0, "refused", &out), -EINVAL);
    EXPECT_EQ(out, untouched);
    // Nothing was mapped, anywhere.
    faultline_region_stats st {};
    EXPECT_EQ(faultline_get_region_stats(rt, spot, &st), -ENOENT);
    const std::string json = c_json(rt);
    EXPECT_EQ(count(json, "\"address\":"), 0u) << json;
    // The spot is still free for a valid map.
    ASSERT_EQ(faultline_map(rt, spot, 4 * kPage, kRW, 0, nullptr, &out), 0) << faultline_last_error();
    EXPECT_EQ(out, spot);
    EXPECT_EQ(faultline_destroy(rt), 0);
}

TEST(CApiContract, ProtectRefusesUnknownAccessBitsAndChangesNothing)
{
    SegvCatcher segv;
    C_RUNTIME_OR_SKIP(rt);
    void* mapped = nullptr;
    ASSERT_EQ(faultline_map(rt, nullptr, 4 * kPage, kRW, 0, nullptr, &mapped), 0) << faultline_last_error();
    auto* p = static_cast<char*>(mapped);
    p[0] = 'a';
    EXPECT_EQ(faultline_protect(rt, p, 4 * kPage, 0x100), -EINVAL);
    // Still read-write: the installed page reads and writes, a fresh page
    // is served for a write.
    char c = 0;
    EXPECT_TRUE(try_read(p, &c));
    EXPECT_EQ(c, 'a');
    EXPECT_TRUE(try_write(p, 'b'));
    EXPECT_TRUE(try_write(p + 2 * kPage, 'c'));
    EXPECT_TRUE(try_read(p + 2 * kPage, &c));
    EXPECT_EQ(c, 'c');
    faultline_region_stats st {};
    ASSERT_EQ(faultline_get_region_stats(rt, p, &st), 0);
    EXPECT_EQ(st.access, kRW);

    // A read-only range stays exactly read-only.
    void* ro = nullptr;
    ASSERT_EQ(faultline_map(rt, nullptr, 2 * kPage, FAULTLINE_ACCESS_READ, 0, nullptr, &ro), 0) << faultline_last_error();
    auto* q = static_cast<char*>(ro);
    EXPECT_EQ(faultline_protect(rt, q, 2 * kPage, 0x100), -EINVAL);
    EXPECT_TRUE(try_read(q, &c));
    EXPECT_EQ(c, 0);
    EXPECT_FALSE(try_write(q, 'w')) << "the refused protect made a read-only range writable";
    ASSERT_EQ(faultline_get_region_stats(rt, q, &st), 0);
    EXPECT_EQ(st.access, unsigned(FAULTLINE_ACCESS_READ));
    EXPECT_EQ(faultline_destroy(rt), 0);
}

// faultline_last_error() is the message of this thread's latest failure: a
// NULL out pointer used to return -EINVAL without setting it, leaving the
// message of an older, unrelated failure in place.
TEST(CApiContract, LastErrorNamesTheNullOutPointer)
{
    C_RUNTIME_OR_SKIP(rt);
    void* p = nullptr;
    // Leaves an unrelated message behind, then succeeds once.
    auto earlier_failure = [&] {
        void* q = nullptr;
        EXPECT_EQ(faultline_map(rt, nullptr, 100, kRW, 0, nullptr, &q), -EINVAL);
        std::string message = faultline_last_error();
        EXPECT_FALSE(message.empty());
        EXPECT_EQ(message.find("NULL"), std::string::npos) << message;
        EXPECT_EQ(faultline_map(rt, nullptr, kPage, kRW, 0, nullptr, &q), 0);
        return message;
    };

    std::string earlier = earlier_failure();
    EXPECT_EQ(faultline_create(nullptr, nullptr), -EINVAL);
    EXPECT_NE(std::string(faultline_last_error()).find("NULL"), std::string::npos) << faultline_last_error();
    EXPECT_NE(std::string(faultline_last_error()), earlier);

    earlier = earlier_failure();
    EXPECT_EQ(faultline_map(rt, nullptr, kPage, kRW, 0, nullptr, nullptr), -EINVAL);
    EXPECT_NE(std::string(faultline_last_error()).find("NULL"), std::string::npos) << faultline_last_error();
    EXPECT_NE(std::string(faultline_last_error()), earlier);

    earlier = earlier_failure();
    ASSERT_EQ(faultline_map(rt, nullptr, kPage, kRW, 0, nullptr, &p), 0);
    EXPECT_EQ(faultline_get_region_stats(rt, p, nullptr), -EINVAL);
    EXPECT_NE(std::string(faultline_last_error()).find("NULL"), std::string::npos) << faultline_last_error();
    EXPECT_NE(std::string(faultline_last_error()), earlier);
    EXPECT_EQ(faultline_destroy(rt), 0);
}

namespace {

// Maps an 8-page stack and writes every page, so that the bytes of what
// remains can be checked after an unmap.
char* map_written_stack(Runtime& rt)
{
    auto s = rt.map_anonymous({ .size = 8 * kPage, .flags = RegionFlags::Stack, .name = "stack" });
    EXPECT_TRUE(s) << s.error().message();
    if (!s)
        return nullptr;
    auto* p = static_cast<char*>(*s);
    for (size_t i = 0; i < 8; ++i)
        p[i * kPage] = char('0' + i);
    return p;
}

// The page at `guard` is a guard: touching it raises SIGSEGV and nothing
// can be mapped over it.
void expect_guard(Runtime& rt, char* guard)
{
    char c;
    EXPECT_FALSE(try_read(guard + kPage - 1, &c)) << "the byte just below the stack piece must fault";
    EXPECT_FALSE(try_write(guard, 'x'));
    auto over = rt.map_anonymous({ .size = kPage, .address = guard });
    ASSERT_FALSE(over) << "a fixed map was placed over the guard page";
    EXPECT_EQ(over.error().code(), EEXIST) << over.error().message();
}

} // namespace

// Unmapping the bottom of a stack used to give back the page right below the
// remaining piece: a later map could place memory there, and an overflow of
// the stack would run into it instead of faulting.
TEST(StackGuardContract, UnmappingTheBottomKeepsAGuardBelowTheRest)
{
    SegvCatcher segv;
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* b = map_written_stack(*rt);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(rt->unmap(b, 4 * kPage));
    char* rest = b + 4 * kPage;
    for (size_t i = 4; i < 8; ++i)
        EXPECT_EQ(b[i * kPage], char('0' + i));
    EXPECT_EQ(rt->region_stats(rest)->size, 4 * kPage);
    expect_guard(*rt, rest - kPage);

    // The three pages below the guard (and the old guard below them) are free.
    auto below = rt->map_anonymous({ .size = 3 * kPage, .address = b });
    ASSERT_TRUE(below) << below.error().message();
    EXPECT_EQ(b[0], 0);
    b[2 * kPage] = 'n';
    // With a neighbour right below, the guard still separates the two.
    expect_guard(*rt, rest - kPage);
    EXPECT_EQ(rest[0], '4');

    // Unmapping all of it frees the guard too: the whole former range,
    // original guard included, can be mapped again.
    ASSERT_TRUE(rt->unmap(b, 3 * kPage));
    ASSERT_TRUE(rt->unmap(rest, 4 * kPage));
    auto whole = rt->map_anonymous({ .size = 9 * kPage, .address = b - kPage });
    ASSERT_TRUE(whole) << whole.error().message();
    EXPECT_EQ(rest[kPage], 0);
    EXPECT_EQ(rt->stats().region_count, 1u);
}

TEST(StackGuardContract, UnmappingTheMiddleKeepsAGuardBelowTheUpperPiece)
{
    SegvCatcher segv;
    FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .fault_around_pages = 1 });
    char* b = map_written_stack(*rt);
    ASSERT_NE(b, nullptr);
    // Pages 2..4 go: the lower piece (0..1) keeps the original guard, the
    // upper piece (5..7) gets page 4 as its guard.
    ASSERT_TRUE(rt->unmap(b + 2 * kPage, 3 * kPage));
    char* upper = b + 5 * kPage;
    EXPECT_EQ(rt->region_stats(b)->size, 2 * kPage);
    EXPECT_EQ(rt->region_stats(upper)->size, 3 * kPage);
    EXPECT_EQ(b[kPage], '1');
    EXPECT_EQ(upper[0], '5');
    expect_guard(*rt, upper - kPage);
    expect_guard(*rt, b - kPage);
    // Pages 2..3 are free.
    auto gap = rt->map_anonymous({ .size = 2 * kPage, .address = b + 2 * kPage });
    ASSERT_TRUE(gap) << gap.error().message();
    expect_guard(*rt, upper - kPage);

    ASSERT_TRUE(rt->unmap(b + 2 * kPage, 2 * kPage));
    ASSERT_TRUE(rt->unmap(b, 2 * kPage));
    ASSERT_TRUE(rt->unmap(upper, 3 * kPage));
    EXPECT_EQ(rt->stats().region_count, 0u);
    auto whole = rt->map_anonymous({ .size = 9 * kPage, .address = b - kPage });
    ASSERT_TRUE(whole) << whole.error().message();
    EXPECT_EQ(b[4 * kPage], 0);
}
