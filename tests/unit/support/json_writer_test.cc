// JsonWriter: separators at every nesting level, string escaping, numbers
// and hex strings.
#include "support/json_writer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

using faultline::JsonWriter;

namespace {

std::string escaped(std::string_view s)
{
    JsonWriter w;
    w.value(s);
    return w.str();
}

} // namespace

TEST(JsonWriter, StartsEmpty)
{
    JsonWriter w;
    EXPECT_EQ(w.str(), "");
}

TEST(JsonWriter, EmptyObjectAndArray)
{
    JsonWriter o;
    o.begin_object();
    o.end_object();
    EXPECT_EQ(o.str(), "{}");
    JsonWriter a;
    a.begin_array();
    a.end_array();
    EXPECT_EQ(a.str(), "[]");
}

TEST(JsonWriter, FlatObject)
{
    JsonWriter w;
    w.begin_object();
    w.field("a", uint64_t(1));
    w.field("b", true);
    w.field("c", "x");
    w.field("d", false);
    w.field("e", -7);
    w.field("f", std::string_view("y"));
    w.end_object();
    EXPECT_EQ(w.str(), R"({"a":1,"b":true,"c":"x","d":false,"e":-7,"f":"y"})");
}

TEST(JsonWriter, SingleField)
{
    JsonWriter w;
    w.begin_object();
    w.key("only");
    w.value(uint64_t(0));
    w.end_object();
    EXPECT_EQ(w.str(), R"({"only":0})");
}

TEST(JsonWriter, FlatArray)
{
    JsonWriter w;
    w.begin_array();
    w.value(uint64_t(1));
    w.value("two");
    w.value(false);
    w.value(3);
    w.end_array();
    EXPECT_EQ(w.str(), R"([1,"two",false,3])");
}

TEST(JsonWriter, NestedContainers)
{
    JsonWriter w;
    w.begin_object();
    w.key("a");
    w.begin_object();
    w.key("b");
    w.begin_array();
    w.value(uint64_t(1));
    w.value(uint64_t(2));
    w.begin_object();
    w.field("c", false);
    w.end_object();
    w.end_array();
    w.key("d");
    w.begin_array();
    w.end_array();
    w.end_object();
    w.field("e", "f");
    w.key("g");
    w.begin_object();
    w.end_object();
    w.end_object();
    EXPECT_EQ(w.str(), R"({"a":{"b":[1,2,{"c":false}],"d":[]},"e":"f","g":{}})");
}

TEST(JsonWriter, ArrayOfObjects)
{
    JsonWriter w;
    w.begin_array();
    for (int i = 0; i < 3; ++i) {
        w.begin_object();
        w.field("tid", i);
        w.field("faults", uint64_t(10 * i));
        w.end_object();
    }
    w.end_array();
    EXPECT_EQ(w.str(), R"([{"tid":0,"faults":0},{"tid":1,"faults":10},{"tid":2,"faults":20}])");
}

TEST(JsonWriter, ArrayOfArrays)
{
    JsonWriter w;
    w.begin_array();
    w.begin_array();
    w.end_array();
    w.begin_array();
    w.value(1);
    w.end_array();
    w.begin_array();
    w.begin_array();
    w.end_array();
    w.end_array();
    w.value(2);
    w.end_array();
    EXPECT_EQ(w.str(), "[[],[1],[[]],2]");
}

TEST(JsonWriter, KeyAfterNestedContainerGetsAComma)
{
    JsonWriter w;
    w.begin_object();
    w.key("list");
    w.begin_array();
    w.value(1);
    w.end_array();
    w.key("obj");
    w.begin_object();
    w.field("x", 1);
    w.end_object();
    w.field("after", 2);
    w.end_object();
    EXPECT_EQ(w.str(), R"({"list":[1],"obj":{"x":1},"after":2})");
}

TEST(JsonWriter, EscapesQuotesAndBackslashes)
{
    EXPECT_EQ(escaped(R"(say "hi")"), R"("say \"hi\"")");
    EXPECT_EQ(escaped(R"(C:\dir\file)"), R"("C:\\dir\\file")");
    EXPECT_EQ(escaped(R"(\")"), R"("\\\"")");
    EXPECT_EQ(escaped(""), R"("")");
}

TEST(JsonWriter, EscapesControlCharacters)
{
    EXPECT_EQ(escaped("a\nb"), R"("a\nb")");
    EXPECT_EQ(escaped("\t"), R"("\u0009")");
    EXPECT_EQ(escaped("\r"), R"("\u000d")");
    EXPECT_EQ(escaped("\x01"), R"("\u0001")");
    EXPECT_EQ(escaped("\x1f"), R"("\u001f")");
    EXPECT_EQ(escaped("\b\f"), R"("\u0008\u000c")");
    EXPECT_EQ(escaped(std::string_view("a\0b", 3)), R"("a\u0000b")");
    // Every control character comes out as some escape, never raw.
    for (int c = 0; c < 0x20; ++c) {
        std::string out = escaped(std::string(1, char(c)));
        EXPECT_EQ(out.find(char(c)), std::string::npos) << "control character " << c << " written raw";
        EXPECT_EQ(out[1], '\\') << c;
    }
}

TEST(JsonWriter, PassesPrintableAndNonAsciiThrough)
{
    EXPECT_EQ(escaped(" ~/{}[]:,'"), R"(" ~/{}[]:,'")");
    EXPECT_EQ(escaped("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
    EXPECT_EQ(escaped("\x7f"), "\"\x7f\"");
}

// Found by the json_writer fuzz target (tests/fuzz): a byte that is not
// part of valid UTF-8 was written raw, and the output was not JSON.
TEST(JsonWriter, ReplacesInvalidUtf8WithReplacementCharacter)
{
    EXPECT_EQ(escaped("R\xcf"), R"("R\ufffd")");                     // a lead byte at the end
    EXPECT_EQ(escaped("\xff\xfe"), R"("\ufffd\ufffd")");             // never valid
    EXPECT_EQ(escaped("\x80" "a"), R"("\ufffda")");                 // a lone continuation byte
    EXPECT_EQ(escaped("\xc0\xaf"), R"("\ufffd\ufffd")");             // overlong '/'
    EXPECT_EQ(escaped("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");   // a surrogate
    EXPECT_EQ(escaped("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")"); // past U+10FFFF
    // Valid sequences of every length stay as they are.
    EXPECT_EQ(escaped("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
}

TEST(JsonWriter, EscapesKeysToo)
{
    JsonWriter w;
    w.begin_object();
    w.field("we\"ird\\key\n", 1);
    w.end_object();
    EXPECT_EQ(w.str(), R"({"we\"ird\\key\n":1})");
}

TEST(JsonWriter, Numbers)
{
    JsonWriter w;
    w.begin_array();
    w.value(uint64_t(0));
    w.value(std::numeric_limits<uint64_t>::max());
    w.value(std::numeric_limits<int>::min());
    w.value(std::numeric_limits<int>::max());
    w.end_array();
    EXPECT_EQ(w.str(), "[0,18446744073709551615,-2147483648,2147483647]");
}

TEST(JsonWriter, HexIsAQuotedString)
{
    JsonWriter w;
    w.begin_object();
    w.key("zero");
    w.hex(0);
    w.key("base");
    w.hex(0x7f0000001000);
    w.key("max");
    w.hex(std::numeric_limits<uint64_t>::max());
    w.key("list");
    w.begin_array();
    w.hex(0xdeadbeef);
    w.hex(0xA);
    w.end_array();
    w.end_object();
    EXPECT_EQ(w.str(), R"({"zero":"0x0","base":"0x7f0000001000","max":"0xffffffffffffffff","list":["0xdeadbeef","0xa"]})");
}

TEST(JsonWriter, RealisticReport)
{
    JsonWriter w;
    w.begin_object();
    w.field("fault_events", uint64_t(42));
    w.key("regions");
    w.begin_array();
    for (int i = 0; i < 2; ++i) {
        w.begin_object();
        w.key("base");
        w.hex(0x1000 * (i + 1));
        w.field("name", i == 0 ? "heap" : "st\"ack");
        w.field("immutable", i == 1);
        w.end_object();
    }
    w.end_array();
    w.key("threads");
    w.begin_array();
    w.end_array();
    w.end_object();
    EXPECT_EQ(w.str(), R"({"fault_events":42,"regions":[{"base":"0x1000","name":"heap","immutable":false},)"
                       R"({"base":"0x2000","name":"st\"ack","immutable":true}],"threads":[]})");
}
