// tools/faultline/json_reader: the `faultline` tool's JSON reader.
#include "json_reader.h"

#include <gtest/gtest.h>

#include <string>

using faultline::cli::JsonValue;

TEST(StatJsonReader, ReadsFieldsInAnyOrderAndSkipsUnknownOnes)
{
    auto v = JsonValue::parse(R"( {"z": [1, {"deep": [true, null]}], "b": {"n": 42, "a": "0x1f"},
                                   "s": "t\"\\\n\u00e9\ud83d\ude00", "f": -1.5e3} )");
    ASSERT_TRUE(v) << v.error().message();
    EXPECT_EQ(faultline::cli::number_at(*v, { "b", "n" }), 42u);
    EXPECT_EQ(faultline::cli::number_at(*v, { "b", "a" }), 0x1fu);
    EXPECT_EQ(faultline::cli::number_at(*v, { "b", "missing" }, 7), 7u);
    EXPECT_EQ(v->get("s")->string(), "t\"\\\n\xc3\xa9\xf0\x9f\x98\x80");
    EXPECT_FALSE(v->get("f")->unsigned_value()); // not an unsigned integer
    EXPECT_EQ(v->get("z")->items().size(), 2u);
    EXPECT_TRUE(v->get("z")->items()[1].get("deep")->items()[0].boolean());
}

TEST(StatJsonReader, RejectsMalformedInput)
{
    for (const char* bad : { "", "{", "{\"a\"}", "{\"a\":1,}", "[1 2]", "\"open", "{\"a\":tru}", "{} x",
             "\"\x01\"", "{\"a\":\"\\q\"}", "-", "[\"\\u12\"]" })
        EXPECT_FALSE(JsonValue::parse(bad)) << bad;
    // Bounded nesting: a hostile reply cannot exhaust the stack.
    EXPECT_FALSE(JsonValue::parse(std::string(100000, '[') + std::string(100000, ']')));
    EXPECT_TRUE(JsonValue::parse(std::string(20, '[') + std::string(20, ']')));
}
