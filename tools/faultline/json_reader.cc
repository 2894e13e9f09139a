#include "json_reader.h"

#include <cerrno>
#include <charconv>

namespace faultline::cli {

namespace {

// Deeper than any reply (three levels) with room for additions.
constexpr int kMaxDepth = 32;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void append_utf8(std::string& out, uint32_t cp)
{
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xc0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += char(0xe0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    } else {
        out += char(0xf0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3f));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    }
}

} // namespace

class JsonParser {
public:
    explicit JsonParser(std::string_view text) : text_(text) {}

    Result<JsonValue> document()
    {
        JsonValue v;
        if (!value(v, 0))
            return failf(EBADMSG, "malformed JSON at byte %zu: %s", pos_, error_);
        skip_space();
        if (pos_ != text_.size())
            return failf(EBADMSG, "malformed JSON at byte %zu: text after the document", pos_);
        return v;
    }

private:
    bool error(const char* what)
    {
        error_ = what;
        return false;
    }
    void skip_space()
    {
        while (pos_ < text_.size() && is_space(text_[pos_]))
            ++pos_;
    }
    bool literal(std::string_view word)
    {
        if (text_.substr(pos_, word.size()) != word)
            return error("unknown literal");
        pos_ += word.size();
        return true;
    }

    bool value(JsonValue& v, int depth)
    {
        if (depth > kMaxDepth)
            return error("nested too deeply");
        skip_space();
        if (pos_ >= text_.size())
            return error("unexpected end");
        switch (text_[pos_]) {
        case '{': return object(v, depth);
        case '[': return array(v, depth);
        case '"': v.kind_ = JsonValue::Kind::String; return string(v.text_);
        case 't': v.kind_ = JsonValue::Kind::Bool; v.flag_ = true; return literal("true");
        case 'f': v.kind_ = JsonValue::Kind::Bool; return literal("false");
        case 'n': return literal("null");
        default: return number(v);
        }
    }

    // The items of an object or array, after its opening character, up to
    // `close`: item() reads one, then a ',' or `close` must follow.
    template <typename Item>
    bool sequence(char close, Item&& item)
    {
        ++pos_; // '{' or '['
        skip_space();
        if (pos_ < text_.size() && text_[pos_] == close) {
            ++pos_;
            return true;
        }
        for (;;) {
            if (!item())
                return false;
            skip_space();
            if (pos_ < text_.size() && text_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < text_.size() && text_[pos_] == close) {
                ++pos_;
                return true;
            }
            return error(close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }

    bool object(JsonValue& v, int depth)
    {
        v.kind_ = JsonValue::Kind::Object;
        return sequence('}', [&] {
            skip_space();
            std::string key;
            if (pos_ >= text_.size() || text_[pos_] != '"')
                return error("expected a key");
            if (!string(key))
                return false;
            skip_space();
            if (pos_ >= text_.size() || text_[pos_++] != ':')
                return error("expected ':'");
            JsonValue member;
            if (!value(member, depth + 1))
                return false;
            v.members_.emplace_back(std::move(key), std::move(member));
            return true;
        });
    }

    bool array(JsonValue& v, int depth)
    {
        v.kind_ = JsonValue::Kind::Array;
        return sequence(']', [&] {
            JsonValue item;
            if (!value(item, depth + 1))
                return false;
            v.items_.push_back(std::move(item));
            return true;
        });
    }

    bool hex4(uint32_t& out)
    {
        if (pos_ + 4 > text_.size())
            return error("short \\u escape");
        out = 0;
        auto [end, ec] = std::from_chars(text_.data() + pos_, text_.data() + pos_ + 4, out, 16);
        if (ec != std::errc() || end != text_.data() + pos_ + 4)
            return error("bad \\u escape");
        pos_ += 4;
        return true;
    }

    bool string(std::string& out)
    {
        ++pos_; // '"'
        while (pos_ < text_.size()) {
            char c = text_[pos_++];
            if (c == '"')
                return true;
            if (static_cast<unsigned char>(c) < 0x20)
                return error("control character in a string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= text_.size())
                break;
            char e = text_[pos_++];
            switch (e) {
            case '"': case '\\': case '/': out += e; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                uint32_t cp;
                if (!hex4(cp))
                    return false;
                if (cp >= 0xd800 && cp < 0xdc00 && text_.substr(pos_, 2) == "\\u") {
                    pos_ += 2;
                    uint32_t low;
                    if (!hex4(low))
                        return false;
                    cp = low >= 0xdc00 && low < 0xe000 ? 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00) : 0xfffd;
                } else if (cp >= 0xd800 && cp < 0xe000) {
                    cp = 0xfffd; // a lone surrogate
                }
                append_utf8(out, cp);
                break;
            }
            default: return error("unknown escape");
            }
        }
        return error("unterminated string");
    }

    bool number(JsonValue& v)
    {
        const size_t start = pos_;
        if (pos_ < text_.size() && text_[pos_] == '-')
            ++pos_;
        const size_t digits = pos_;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9')
            ++pos_;
        if (pos_ == digits)
            return error("expected a value");
        while (pos_ < text_.size() && (std::string_view("0123456789.eE+-").find(text_[pos_]) != std::string_view::npos))
            ++pos_;
        v.kind_ = JsonValue::Kind::Number;
        v.text_.assign(text_.substr(start, pos_ - start));
        return true;
    }

    std::string_view text_;
    size_t pos_ = 0;
    const char* error_ = nullptr;
};

Result<JsonValue> JsonValue::parse(std::string_view text) { return JsonParser(text).document(); }

const JsonValue* JsonValue::get(std::string_view key) const
{
    for (const auto& [k, v] : members_)
        if (k == key)
            return &v;
    return nullptr;
}

std::optional<uint64_t> JsonValue::unsigned_value() const
{
    std::string_view s = text_;
    int base = 10;
    if (kind_ == Kind::String && s.starts_with("0x")) {
        s.remove_prefix(2);
        base = 16;
    } else if (kind_ != Kind::Number) {
        return std::nullopt;
    }
    uint64_t out = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty())
        return std::nullopt;
    return out;
}

const JsonValue* at(const JsonValue& root, std::initializer_list<std::string_view> path)
{
    const JsonValue* v = &root;
    for (std::string_view key : path)
        if (!(v = v->get(key)))
            return nullptr;
    return v;
}

uint64_t number_at(const JsonValue& root, std::initializer_list<std::string_view> path, uint64_t fallback)
{
    const JsonValue* v = at(root, path);
    auto n = v ? v->unsigned_value() : std::nullopt;
    return n ? *n : fallback;
}

} // namespace faultline::cli
