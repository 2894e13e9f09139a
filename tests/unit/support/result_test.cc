// Error and Result (include/faultline/result.h): code and message kept,
// long messages cut inside the fixed buffer (never past it, always
// terminated), printf-style construction, and the properties that let the
// fault path and the preloaded malloc build Errors without allocating.
#include <faultline/result.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>

using faultline::Error;
using faultline::fail;
using faultline::failf;
using faultline::Result;

namespace {

// No std::string (or any other owner of heap memory) inside: an Error is a
// code and a fixed buffer, copied byte for byte.
static_assert(std::is_trivially_copyable_v<Error>);
static_assert(std::is_nothrow_copy_constructible_v<Error>);
static_assert(std::is_nothrow_move_constructible_v<Error>);
static_assert(std::is_nothrow_constructible_v<Error, int, std::string_view>);
static_assert(std::is_nothrow_constructible_v<Error, int, const char*>);
static_assert(sizeof(Error) < Error::kMessageCapacity + 16);

constexpr size_t kKept = Error::kMessageCapacity - 1; // characters kept at most

std::string pattern(size_t n)
{
    std::string s;
    for (size_t i = 0; i < n; ++i)
        s += char('a' + i % 26);
    return s;
}

// Builds an Error (by `make`) in storage followed by guard bytes and checks
// the guard: a write past the message buffer would land there.
template <typename Make>
void expect_no_overflow(Make make)
{
    constexpr size_t kGuard = 64;
    alignas(Error) unsigned char storage[sizeof(Error) + kGuard];
    std::memset(storage, 0x5a, sizeof storage);
    Error* e = new (storage) Error(make());
    EXPECT_EQ(std::strlen(e->message()), kKept);
    for (size_t i = sizeof(Error); i < sizeof storage; ++i)
        ASSERT_EQ(storage[i], 0x5a) << "byte " << i - sizeof(Error) << " past the Error was written";
}

TEST(Error, KeepsCodeAndMessage)
{
    Error e(EINVAL, "size must be a multiple of the page size");
    EXPECT_EQ(e.code(), EINVAL);
    EXPECT_STREQ(e.message(), "size must be a multiple of the page size");
    Error empty(ENOMEM, "");
    EXPECT_EQ(empty.code(), ENOMEM);
    EXPECT_STREQ(empty.message(), "");
    Error null(EIO, static_cast<const char*>(nullptr));
    EXPECT_STREQ(null.message(), "");
}

// A string_view is not terminated: only its own characters are copied.
TEST(Error, CopiesExactlyTheStringView)
{
    const char text[] = "abcdefgh";
    Error e(EFAULT, std::string_view(text, 3));
    EXPECT_STREQ(e.message(), "abc");
}

TEST(Error, MessageAtTheLimitIsKeptWhole)
{
    const std::string m = pattern(kKept);
    Error e(E2BIG, m);
    EXPECT_EQ(std::string(e.message()), m);
}

TEST(Error, LongMessageIsCut)
{
    for (size_t n : { kKept + 1, kKept + 2, size_t(5000) }) {
        const std::string m = pattern(n);
        Error e(E2BIG, m);
        EXPECT_EQ(e.code(), E2BIG);
        EXPECT_EQ(std::string(e.message()), m.substr(0, kKept)) << n;
    }
}

TEST(Error, LongMessagesNeverWritePastTheBuffer)
{
    const std::string m = pattern(4 * Error::kMessageCapacity);
    expect_no_overflow([&] { return Error(E2BIG, m); });
    expect_no_overflow([&] { return Error(E2BIG, m.c_str()); });
    expect_no_overflow([&] { return Error::format(E2BIG, "%s", m.c_str()); });
    expect_no_overflow([&] { return failf(E2BIG, "%s%s", m.c_str(), m.c_str()).error(); });
}

TEST(Error, CopyIsIndependent)
{
    Error a(EPERM, "first");
    Error b = a;
    EXPECT_EQ(b.code(), EPERM);
    EXPECT_STREQ(b.message(), "first");
    EXPECT_NE(b.message(), a.message()); // its own buffer, not a pointer into `a`
    a = Error(EBUSY, "second");
    EXPECT_STREQ(b.message(), "first");
    EXPECT_EQ(b.code(), EPERM);
}

TEST(Error, FormatLikePrintf)
{
    Error e = Error::format(ENOMEM, "commit limit reached (%zu of %zu), %s %d %#x %.2f%%", size_t(10), size_t(20),
        "region", -3, 255u, 1.5);
    EXPECT_EQ(e.code(), ENOMEM);
    EXPECT_STREQ(e.message(), "commit limit reached (10 of 20), region -3 0xff 1.50%");
    Error plain = Error::format(EINVAL, "no arguments");
    EXPECT_STREQ(plain.message(), "no arguments");
}

TEST(Error, FormatCutsLongOutput)
{
    const std::string m = pattern(2000);
    Error e = Error::format(EINVAL, "<%s>", m.c_str());
    EXPECT_EQ(std::string(e.message()), ("<" + m).substr(0, kKept));
}

TEST(Result, FailAndFailfCarryTheError)
{
    Result<int> r = fail(ENOENT, "no such region");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ENOENT);
    EXPECT_STREQ(r.error().message(), "no such region");

    Result<void> v = failf(EEXIST, "region '%s' at %#lx exists", "heap", 0x1000ul);
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code(), EEXIST);
    EXPECT_STREQ(v.error().message(), "region 'heap' at 0x1000 exists");

    const std::string m = pattern(3000);
    Result<int> cut = failf(E2BIG, "%s", m.c_str());
    EXPECT_EQ(std::string(cut.error().message()), m.substr(0, kKept));
}

TEST(Result, HoldsValues)
{
    Result<int> r = 42;
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 42);
    Result<void> v {};
    EXPECT_TRUE(v);
    Result<std::string> s = std::expected<std::string, Error>("text");
    ASSERT_TRUE(s);
    EXPECT_EQ(*s, "text");
}

} // namespace
