// tools/faultline/stat_printer.h — the human form of a stat report: a
// summary line, the region table and the counters. Fields are looked up by
// name, so their order does not matter; a field a runtime does not send
// prints as 0 or is left out.
#pragma once

#include "json_reader.h"

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace faultline::cli {

class StatPrinter {
public:
    explicit StatPrinter(FILE* out) : out_(out) {}

    // `address` is the endpoint's ("@faultline/<pid>/<n>").
    void print(std::string_view address, const JsonValue& report) const;

    // 8.0 MiB, 512 B: binary units with one decimal.
    static std::string bytes(uint64_t n);

private:
    void header(std::string_view address, const JsonValue& report) const;
    void regions(const JsonValue& report) const;
    void counters(const JsonValue& report) const;

    FILE* out_;
};

} // namespace faultline::cli
