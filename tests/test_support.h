// Helpers shared by the kernel tests.
#pragma once

#include <faultline/runtime.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace faultline::testing {

// Creates a runtime or skips the test with the reason (userfaultfd not
// available to this process), never passing silently.
inline std::unique_ptr<Runtime> make_runtime(Config config = {})
{
    auto rt = Runtime::create(std::move(config));
    if (!rt)
        return nullptr;
    return std::move(*rt);
}

#define FAULTLINE_RUNTIME_OR_SKIP(var, ...)                                                              \
    auto var##_result = ::faultline::Runtime::create(__VA_ARGS__);                                       \
    if (!var##_result)                                                                                   \
        GTEST_SKIP() << "userfaultfd unavailable: " << var##_result.error().message();                   \
    std::unique_ptr<::faultline::Runtime> var = std::move(*var##_result)

constexpr size_t kPage = 4096;

} // namespace faultline::testing
