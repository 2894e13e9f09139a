// tools/faultline/json_reader.h — a small JSON reader for the stat reply.
//
// Hand-written because no JSON library is among the project's dependencies
// (Debian packages only, none of them a JSON parser) and the tool reads one
// document of a known, shallow shape. It is still a complete reader of
// RFC 8259 syntax — not a scanner for expected keys — so that it depends on
// neither field order nor spacing, skips fields it does not know (newer
// runtimes add some), and rejects malformed input instead of misreading it.
// Nesting is bounded, so a hostile reply cannot exhaust the stack.
#pragma once

#include <faultline/result.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace faultline::cli {

class JsonValue {
public:
    enum class Kind { Null, Bool, Number, String, Array, Object };

    static Result<JsonValue> parse(std::string_view text);

    Kind kind() const { return kind_; }
    // The member `key` of an object; nullptr when absent or not an object.
    const JsonValue* get(std::string_view key) const;
    // Array items (empty for any other kind).
    const std::vector<JsonValue>& items() const { return items_; }
    // A string's value ("" for other kinds).
    std::string_view string() const { return kind_ == Kind::String ? std::string_view(text_) : std::string_view(); }
    // A non-negative integer, or a string "0x<hex>" (addresses).
    std::optional<uint64_t> unsigned_value() const;
    bool boolean() const { return kind_ == Kind::Bool && flag_; }

private:
    friend class JsonParser;
    Kind kind_ = Kind::Null;
    bool flag_ = false;
    std::string text_; // a string's value, or a number's literal
    std::vector<JsonValue> items_;
    std::vector<std::pair<std::string, JsonValue>> members_;
};

// Looks up a path of object keys: at(doc, {"faults", "events"}).
const JsonValue* at(const JsonValue& root, std::initializer_list<std::string_view> path);
// The unsigned value at `path`, or `fallback`.
uint64_t number_at(const JsonValue& root, std::initializer_list<std::string_view> path, uint64_t fallback = 0);

} // namespace faultline::cli
