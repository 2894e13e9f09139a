// faultline/result.h — the error type every fallible call returns.
//
// A call either yields its value or an Error carrying an errno value (the
// contract, documented per call in docs/api.md) and a sentence for humans
// (what went wrong and, where we know it, how to fix it). The C API returns
// -Error::code.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <utility>

namespace faultline {

class Error {
public:
    Error(int code, std::string message) : code_(code), message_(std::move(message)) {}

    // The errno value (positive) that describes this failure.
    int code() const noexcept { return code_; }
    // A human-readable sentence; never used for control flow.
    const std::string& message() const noexcept { return message_; }

private:
    int code_;
    std::string message_;
};

template <typename T>
using Result = std::expected<T, Error>;

// Shorthand used throughout the library: `return fail(EINVAL, "...")`.
inline std::unexpected<Error> fail(int code, std::string message)
{
    return std::unexpected<Error>(Error(code, std::move(message)));
}

} // namespace faultline
