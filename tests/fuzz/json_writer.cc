// Fuzz target `json_writer`: JsonWriter (lib/support/json_writer.h), which
// writes the region table of faultline_to_json. The input becomes a document
// (objects, arrays, keys and strings of any bytes, numbers, booleans, hex
// strings, nested up to 64 deep); the target writes it, parses the output with
// a strict RFC 8259 parser (no JSON library is a dependency, so a small one
// is here) and compares what it parsed with what it wrote.
//
// Strings must round-trip byte for byte when they are valid UTF-8; JSON text
// must be UTF-8 (RFC 8259 section 8.1), so other bytes must come out as
// U+FFFD, one per byte that is not part of a valid sequence.
#include "fuzz_input.h"

#include "support/json_writer.h"

#include <string>
#include <string_view>
#include <vector>

using faultline::JsonWriter;

namespace {

// A document node: what was written, and what the parser rebuilds.
struct Node {
    enum Kind { Object, Array, String, Number, Bool } kind = Bool;
    std::string text; // String: the decoded bytes; Number: the digits; Bool: true/false
    std::vector<std::pair<std::string, Node>> members;
    std::vector<Node> items;
    bool operator==(const Node&) const = default;
};

// The length of the valid UTF-8 sequence at s[i], or 0 if there is none
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
// Written apart from JsonWriter's own check on purpose: the reference must
// not share the code it checks.
size_t utf8_length(std::string_view s, size_t i)
{
    auto b = [&](size_t k) { return i + k < s.size() ? uint8_t(s[i + k]) : 0; };
    auto cont = [&](size_t k) { return (b(k) & 0xc0) == 0x80; };
    uint8_t c = b(0);
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return cont(1) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (!cont(1) || !cont(2) || (c == 0xe0 && b(1) < 0xa0) || (c == 0xed && b(1) >= 0xa0))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (!cont(1) || !cont(2) || !cont(3) || (c == 0xf0 && b(1) < 0x90) || (c == 0xf4 && b(1) >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

// What a string must read as after the round trip.
std::string expected_string(std::string_view s)
{
    std::string out;
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8_length(s, i);
        if (n == 0) {
            out += "\xef\xbf\xbd"; // U+FFFD
            ++i;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    return out;
}

// Builds a random document and writes it; returns what it must parse back as.
Node write(fuzz::Input& in, JsonWriter& w, int depth)
{
    Node n;
    uint8_t kind = in.u8() % 8;
    if (depth >= 64 && kind < 2)
        kind = 2;
    switch (kind) {
    case 0: {
        n.kind = Node::Object;
        w.begin_object();
        for (int count = in.u8() % 8; count > 0 && !in.done(); --count) {
            std::string key = in.bytes(24);
            w.key(key);
            Node value = write(in, w, depth + 1);
            n.members.push_back({ expected_string(key), std::move(value) });
        }
        w.end_object();
        break;
    }
    case 1:
        n.kind = Node::Array;
        w.begin_array();
        for (int count = in.u8() % 8; count > 0 && !in.done(); --count)
            n.items.push_back(write(in, w, depth + 1));
        w.end_array();
        break;
    case 2:
    case 3: {
        std::string s = in.bytes(64);
        n.kind = Node::String;
        if (in.flag()) {
            w.value(std::string_view(s));
        } else {
            s = s.c_str(); // the const char* overload stops at the first NUL
            w.value(s.c_str());
        }
        n.text = expected_string(s);
        break;
    }
    case 4: {
        uint64_t v = in.u64();
        n.kind = Node::Number;
        n.text = std::to_string(v);
        w.value(v);
        break;
    }
    case 5: {
        int v = int(in.u32());
        n.kind = Node::Number;
        n.text = std::to_string(v);
        w.value(v);
        break;
    }
    case 6: {
        uint64_t v = in.u64();
        char buf[32];
        snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
        n.kind = Node::String;
        n.text = buf;
        w.hex(v);
        break;
    }
    case 7:
        n.kind = Node::Bool;
        n.text = in.flag() ? "true" : "false";
        w.value(n.text == "true");
        break;
    }
    return n;
}

// A strict recursive-descent parser of RFC 8259 JSON text.
class Parser {
public:
    explicit Parser(std::string_view s)
        : s_(s)
    {
    }

    Node document()
    {
        Node n = value(0);
        whitespace();
        expect(at_ == s_.size(), "text after the value");
        return n;
    }

private:
    void expect(bool ok, const char* what)
    {
        FUZZ_CHECK(ok, "invalid JSON at byte %zu: %s\n  %.*s", at_, what, int(s_.size()), s_.data());
    }
    char peek() const { return at_ < s_.size() ? s_[at_] : '\0'; }
    char next()
    {
        expect(at_ < s_.size(), "unexpected end");
        return s_[at_++];
    }
    void whitespace()
    {
        while (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')
            ++at_;
    }
    void literal(std::string_view word)
    {
        expect(s_.substr(at_, word.size()) == word, "bad literal");
        at_ += word.size();
    }

    // After '{' or '[': true (and past it) if the closing `end` comes next.
    bool empty_container(char end)
    {
        whitespace();
        if (peek() != end)
            return false;
        ++at_;
        return true;
    }

    // After a member or an item: true (and past it) at the closing `end`,
    // false past the ',' before the next one.
    bool container_ends(char end, const char* what)
    {
        whitespace();
        char d = next();
        if (d == end)
            return true;
        expect(d == ',', what);
        return false;
    }

    Node value(int depth)
    {
        expect(depth < 256, "nested too deep");
        whitespace();
        Node n;
        char c = peek();
        if (c == '{') {
            n.kind = Node::Object;
            ++at_;
            if (empty_container('}'))
                return n;
            for (;;) {
                whitespace();
                expect(peek() == '"', "a key must be a string");
                std::string key = string();
                whitespace();
                expect(next() == ':', "':' after a key");
                n.members.push_back({ key, value(depth + 1) });
                if (container_ends('}', "',' or '}' in an object"))
                    return n;
            }
        }
        if (c == '[') {
            n.kind = Node::Array;
            ++at_;
            if (empty_container(']'))
                return n;
            for (;;) {
                n.items.push_back(value(depth + 1));
                if (container_ends(']', "',' or ']' in an array"))
                    return n;
            }
        }
        if (c == '"') {
            n.kind = Node::String;
            n.text = string();
            return n;
        }
        if (c == 't' || c == 'f') {
            n.kind = Node::Bool;
            n.text = c == 't' ? "true" : "false";
            literal(n.text);
            return n;
        }
        expect(c == '-' || (c >= '0' && c <= '9'), "a value");
        n.kind = Node::Number;
        n.text = number();
        return n;
    }

    std::string number()
    {
        size_t start = at_;
        auto digits = [&] {
            size_t from = at_;
            while (peek() >= '0' && peek() <= '9')
                ++at_;
            expect(at_ > from, "digits");
        };
        if (peek() == '-')
            ++at_;
        if (peek() == '0')
            ++at_;
        else
            digits();
        if (peek() == '.') {
            ++at_;
            digits();
        }
        if (peek() == 'e' || peek() == 'E') {
            ++at_;
            if (peek() == '+' || peek() == '-')
                ++at_;
            digits();
        }
        return std::string(s_.substr(start, at_ - start));
    }

    unsigned hex4()
    {
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            char c = next();
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            expect(d >= 0, "a hex digit in \\u");
            v = v * 16 + unsigned(d);
        }
        return v;
    }

    static void append_utf8(std::string& out, unsigned cp)
    {
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xc0 | cp >> 6);
            out += char(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out += char(0xe0 | cp >> 12);
            out += char(0x80 | (cp >> 6 & 0x3f));
            out += char(0x80 | (cp & 0x3f));
        } else {
            out += char(0xf0 | cp >> 18);
            out += char(0x80 | (cp >> 12 & 0x3f));
            out += char(0x80 | (cp >> 6 & 0x3f));
            out += char(0x80 | (cp & 0x3f));
        }
    }

    std::string string()
    {
        expect(next() == '"', "'\"'");
        std::string out;
        for (;;) {
            char c = next();
            if (c == '"')
                return out;
            expect(uint8_t(c) >= 0x20, "a control character inside a string");
            if (c != '\\') {
                size_t n = utf8_length(s_, at_ - 1);
                expect(n > 0, "bytes that are not UTF-8");
                out.append(s_.substr(at_ - 1, n));
                at_ += n - 1;
                continue;
            }
            switch (char e = next()) {
            case '"': case '\\': case '/': out += e; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                unsigned cp = hex4();
                if (cp >= 0xd800 && cp < 0xdc00) {
                    expect(next() == '\\' && next() == 'u', "a low surrogate after a high one");
                    unsigned lo = hex4();
                    expect(lo >= 0xdc00 && lo < 0xe000, "a low surrogate");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else {
                    expect(cp < 0xdc00 || cp >= 0xe000, "a lone low surrogate");
                }
                append_utf8(out, cp);
                break;
            }
            default:
                expect(false, "an unknown escape");
            }
        }
    }

    std::string_view s_;
    size_t at_ = 0;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    fuzz::Input in(data, size);
    JsonWriter w;
    Node wrote = write(in, w, 0);
    Node parsed = Parser(w.str()).document();
    FUZZ_CHECK(parsed == wrote, "the output does not parse back as what was written:\n  %s", w.str().c_str());
    return 0;
}
