// support/try.h — error propagation without hand-written boilerplate.
//
//   auto range = TRY(tree.place_anywhere(size, alignment));   // value, or return the error
//   TRY(validate(address, size));                              // Result<void>
//
// As SerenityOS's TRY and Abseil's ASSIGN_OR_RETURN: the expression is
// evaluated once; on error the enclosing function (which must return some
// Result<U>) returns that error unchanged. A GNU statement expression, which
// g++ and clang both accept.
//
// Do not use TRY inside a non-generic lambda while the project builds with
// g++ 12: with -std=c++23 it hands a moved-from value out of the statement
// expression there (seen with Result<std::unique_ptr<T>>: the value arrives
// null). Ordinary functions and templates are correct; tests/unit/support/
// try_test.cc covers the forms the library uses.
#pragma once

#include <faultline/result.h>

#include <utility>

#define TRY(expression)                                                                                  \
    __extension__({                                                                                                   \
        auto&& _faultline_try_result = (expression);                                                     \
        if (!_faultline_try_result) [[unlikely]]                                                         \
            return std::unexpected<::faultline::Error>(std::move(_faultline_try_result).error());        \
        std::move(_faultline_try_result).value();                                                        \
    })
