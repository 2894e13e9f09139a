// faultline/result.h — the error type every fallible call returns.
//
// A call either yields its value or an Error carrying an errno value (the
// contract, documented per call in docs/api.md) and a sentence for humans
// (what went wrong and, where we know it, how to fix it). The C API returns
// -Error::code().
//
// An Error never allocates: its message lives in a fixed buffer inside it
// (long messages are cut, never lost as a whole). The preloaded malloc and
// the fault path build Errors where calling malloc is not allowed, and an
// allocation failure must still be reportable as ENOMEM.
//
// Result is [[nodiscard]]: a dropped Result is a dropped error, and the
// compiler says so.
#pragma once

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <expected>
#include <string_view>
#include <utility>

namespace faultline {

class Error {
public:
    // Bytes kept of a message, terminator included.
    static constexpr size_t kMessageCapacity = 512;

    Error(int code, std::string_view message) noexcept
        : code_(code)
    {
        size_t n = message.size() < kMessageCapacity - 1 ? message.size() : kMessageCapacity - 1;
        // An empty string_view may have a null data(): memcpy must not see it.
        if (n)
            std::memcpy(message_, message.data(), n);
        message_[n] = '\0';
    }
    Error(int code, const char* message) noexcept
        : Error(code, std::string_view(message ? message : ""))
    {
    }

    // printf-style construction, still without allocating.
    [[gnu::format(printf, 2, 3)]] static Error format(int code, const char* fmt, ...) noexcept
    {
        Error e(code, std::string_view());
        va_list ap;
        va_start(ap, fmt);
        std::vsnprintf(e.message_, kMessageCapacity, fmt, ap);
        va_end(ap);
        return e;
    }

    // The errno value (positive) that describes this failure.
    int code() const noexcept { return code_; }
    // A human-readable sentence; never used for control flow. Valid as long
    // as this Error is.
    const char* message() const noexcept { return message_; }

private:
    int code_;
    char message_[kMessageCapacity];
};

// std::expected that must not be ignored.
template <typename T>
class [[nodiscard]] Result : public std::expected<T, Error> {
public:
    using std::expected<T, Error>::expected;
    Result(const std::expected<T, Error>& e) : std::expected<T, Error>(e) {}
    Result(std::expected<T, Error>&& e) : std::expected<T, Error>(std::move(e)) {}
};

// Shorthand used throughout the library: `return fail(EINVAL, "...")`.
inline std::unexpected<Error> fail(int code, std::string_view message) noexcept
{
    return std::unexpected<Error>(Error(code, message));
}

// `return failf(ENOMEM, "commit limit reached (%zu of %zu)", a, b)`.
[[gnu::format(printf, 2, 3)]] inline std::unexpected<Error> failf(int code, const char* fmt, ...) noexcept
{
    char buffer[Error::kMessageCapacity];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buffer, sizeof buffer, fmt, ap);
    va_end(ap);
    return std::unexpected<Error>(Error(code, std::string_view(buffer)));
}

} // namespace faultline
