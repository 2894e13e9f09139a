// TRY (lib/support/try.h): on error the enclosing function returns the
// error unchanged, otherwise TRY yields the value; the expression is
// evaluated exactly once either way, and what follows a failing TRY does
// not run.
#include "support/try.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>

using faultline::Error;
using faultline::fail;
using faultline::Result;

namespace {

int g_calls = 0; // how many times a producer below was evaluated
int g_after = 0; // how many times code after a TRY ran

Result<int> int_ok(int v)
{
    ++g_calls;
    return v;
}
Result<int> int_err(int code, const char* message)
{
    ++g_calls;
    return fail(code, message);
}
Result<void> void_ok()
{
    ++g_calls;
    return {};
}
Result<void> void_err(int code, const char* message)
{
    ++g_calls;
    return fail(code, message);
}

// Each wrapper uses TRY once and counts whether it got past it.
Result<int> doubled(Result<int> (*produce)())
{
    int v = TRY(produce());
    ++g_after;
    return 2 * v;
}
Result<void> checked(Result<void> (*produce)())
{
    TRY(produce());
    ++g_after;
    return {};
}
// Result<void> inside a function returning a value, and the reverse.
Result<std::string> void_in_value(Result<void> (*produce)())
{
    TRY(produce());
    ++g_after;
    return std::string("done");
}
Result<void> value_in_void(Result<int> (*produce)(), int* out)
{
    *out = TRY(produce());
    ++g_after;
    return {};
}

class Try : public testing::Test {
protected:
    void SetUp() override { g_calls = g_after = 0; }
};

TEST_F(Try, YieldsTheValue)
{
    Result<int> r = doubled([] { return int_ok(21); });
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 42);
    EXPECT_EQ(g_calls, 1);
    EXPECT_EQ(g_after, 1);

    int out = 0;
    ASSERT_TRUE(value_in_void([] { return int_ok(7); }, &out));
    EXPECT_EQ(out, 7);
    EXPECT_EQ(g_calls, 2);
}

TEST_F(Try, ReturnsTheErrorOfAResultT)
{
    Result<int> r = doubled([] { return int_err(ENOSPC, "arena is full"); });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ENOSPC);
    EXPECT_STREQ(r.error().message(), "arena is full");
    EXPECT_EQ(g_calls, 1);
    EXPECT_EQ(g_after, 0);

    int out = -1;
    Result<void> v = value_in_void([] { return int_err(EBADF, "bad descriptor"); }, &out);
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code(), EBADF);
    EXPECT_STREQ(v.error().message(), "bad descriptor");
    EXPECT_EQ(out, -1); // never assigned
    EXPECT_EQ(g_calls, 2);
    EXPECT_EQ(g_after, 0);
}

TEST_F(Try, PassesAResultVoid)
{
    EXPECT_TRUE(checked(void_ok));
    auto s = void_in_value(void_ok);
    ASSERT_TRUE(s);
    EXPECT_EQ(*s, "done");
    EXPECT_EQ(g_calls, 2);
    EXPECT_EQ(g_after, 2);
}

TEST_F(Try, ReturnsTheErrorOfAResultVoid)
{
    Result<void> r = checked([] { return void_err(EPERM, "region is immutable"); });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EPERM);
    EXPECT_STREQ(r.error().message(), "region is immutable");

    auto s = void_in_value([] { return void_err(EACCES, "W^X"); });
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), EACCES);
    EXPECT_STREQ(s.error().message(), "W^X");
    EXPECT_EQ(g_calls, 2);
    EXPECT_EQ(g_after, 0);
}

// The whole message survives propagation, up to the longest one kept.
TEST_F(Try, LongMessagesPropagateUnchanged)
{
    static std::string m(Error::kMessageCapacity - 1, 'x');
    m.back() = 'y';
    Result<int> r = doubled([] { return int_err(E2BIG, m.c_str()); });
    ASSERT_FALSE(r);
    EXPECT_EQ(std::string(r.error().message()), m);
}

// Side effects in the expression itself happen once (the macro must not
// repeat it to test and then to take the value).
TEST_F(Try, EvaluatesTheExpressionOnce)
{
    int counter = 0;
    auto bump = [&]() -> Result<int> {
        ++counter;
        if (counter > 1)
            return fail(EDOM, "evaluated twice");
        return counter * 10;
    };
    auto use = [&]() -> Result<int> { return TRY(bump()) + 1; };
    Result<int> r = use();
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, 11);
    EXPECT_EQ(counter, 1);

    int attempts = 0;
    auto failing = [&]() -> Result<int> {
        ++attempts;
        return fail(EIO, "once");
    };
    auto use_failing = [&]() -> Result<void> {
        (void)TRY(failing());
        return {};
    };
    EXPECT_FALSE(use_failing());
    EXPECT_EQ(attempts, 1);
}

// Move-only values come out of TRY by move, as Region::try_create's
// unique_ptr does in the library. Deliberately in plain functions: g++ 12 in
// C++23 mode miscompiles a statement expression that yields a unique_ptr
// inside a non-generic lambda (the value arrives null; clang and -std=c++20
// are fine), so TRY of a Result<unique_ptr> must not be used in a lambda.
Result<std::unique_ptr<int>> make_owned(int v)
{
    ++g_calls;
    if (v < 0)
        return fail(EINVAL, "negative");
    return std::make_unique<int>(v);
}
Result<int> use_owned(int v)
{
    std::unique_ptr<int> p = TRY(make_owned(v));
    ++g_after;
    return p ? *p : -1;
}

TEST_F(Try, MovesMoveOnlyValues)
{
    Result<int> r = use_owned(5);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 5);
    Result<int> e = use_owned(-1);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), EINVAL);
    EXPECT_EQ(g_calls, 2);
    EXPECT_EQ(g_after, 1);
}

} // namespace
