// Tests that map their own VMObjects (tests/support/*_object.h) need the
// runtime's internal RuntimeCore, which the public Runtime wraps.
#pragma once

#include "runtime/runtime_core.h"

#include <gtest/gtest.h>

#define FAULTLINE_CORE_OR_SKIP(var, ...)                                                                 \
    auto var##_result = ::faultline::RuntimeCore::try_create(__VA_ARGS__);                               \
    if (!var##_result)                                                                                   \
        GTEST_SKIP() << "userfaultfd unavailable: " << var##_result.error().message();                   \
    std::unique_ptr<::faultline::RuntimeCore> var = std::move(*var##_result)
