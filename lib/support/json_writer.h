// support/json_writer.h — a minimal streaming JSON writer for Runtime::to_json.
//
// Written by hand because the only output is a small, flat report and none
// of the Debian-packaged JSON libraries is already a dependency; pulling one
// in for forty lines of output is not worth a new build dependency.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace faultline {

class JsonWriter {
public:
    void begin_object() { value_prefix(); out_ += '{'; first_ = true; }
    void end_object() { out_ += '}'; first_ = false; }
    void begin_array() { value_prefix(); out_ += '['; first_ = true; }
    void end_array() { out_ += ']'; first_ = false; }
    void key(std::string_view k)
    {
        if (!first_)
            out_ += ',';
        string_literal(k);
        out_ += ':';
        first_ = true; // the value follows without a comma
        after_key_ = true;
    }
    void value(std::string_view s) { value_prefix(); string_literal(s); }
    void value(const char* s) { value(std::string_view(s)); }
    void value(bool b) { value_prefix(); out_ += b ? "true" : "false"; }
    void value(uint64_t v) { value_prefix(); out_ += std::to_string(v); }
    void value(int v) { value_prefix(); out_ += std::to_string(v); }
    void hex(uint64_t v)
    {
        char buf[32];
        snprintf(buf, sizeof buf, "\"0x%llx\"", static_cast<unsigned long long>(v));
        value_prefix();
        out_ += buf;
    }
    template <typename T>
    void field(std::string_view k, const T& v) { key(k); value(v); }

    const std::string& str() const { return out_; }

private:
    void value_prefix()
    {
        if (!after_key_ && !first_)
            out_ += ',';
        after_key_ = false;
        first_ = false;
    }
    void string_literal(std::string_view s)
    {
        out_ += '"';
        for (size_t i = 0; i < s.size(); ++i) {
            const char c = s[i];
            // JSON text is UTF-8 (RFC 8259, 8.1): a byte that does not start
            // a valid sequence becomes U+FFFD instead of making the whole
            // output unparsable (found by the json_writer fuzz target).
            if (static_cast<unsigned char>(c) >= 0x80) {
                const size_t n = utf8_sequence_length(s, i);
                if (n == 0) {
                    out_ += "\\ufffd";
                } else {
                    out_.append(s.substr(i, n));
                    i += n - 1;
                }
                continue;
            }
            switch (c) {
            case '"': out_ += "\\\""; break;
            case '\\': out_ += "\\\\"; break;
            case '\n': out_ += "\\n"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    snprintf(buf, sizeof buf, "\\u%04x", c);
                    out_ += buf;
                } else {
                    out_ += c;
                }
            }
        }
        out_ += '"';
    }
    // The length of the valid UTF-8 sequence starting at s[i] (a byte >=
    // 0x80), or 0: overlong forms, surrogates and code points past U+10FFFF
    // are not valid.
    static size_t utf8_sequence_length(std::string_view s, size_t i)
    {
        auto byte = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
        auto continuation = [&](size_t k) { return (byte(k) & 0xc0) == 0x80; };
        const unsigned c = byte(0);
        if (c >= 0xc2 && c <= 0xdf)
            return continuation(1) ? 2 : 0;
        if (c >= 0xe0 && c <= 0xef) {
            if (!continuation(1) || !continuation(2) || (c == 0xe0 && byte(1) < 0xa0) || (c == 0xed && byte(1) >= 0xa0))
                return 0;
            return 3;
        }
        if (c >= 0xf0 && c <= 0xf4) {
            if (!continuation(1) || !continuation(2) || !continuation(3) || (c == 0xf0 && byte(1) < 0x90)
                || (c == 0xf4 && byte(1) >= 0x90))
                return 0;
            return 4;
        }
        return 0;
    }
    std::string out_;
    bool first_ = true;
    bool after_key_ = false;
};

} // namespace faultline
