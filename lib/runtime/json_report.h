// runtime/json_report.h — Runtime::to_json(): the region table and the
// counters as one JSON document (schema in docs/api.md), like SerenityOS's
// /proc/PID/vm.
#pragma once

#include "runtime/region_statistics.h"

#include <faultline/purgeable.h>
#include <faultline/types.h>

#include <string>
#include <vector>

namespace faultline {

struct JsonReportInput {
    uintptr_t arena_base = 0;
    size_t arena_size = 0;
    size_t page_size = 0;
    std::vector<std::string> features;
    bool user_mode_only = false;
    // Measured regions with their per-page maps and pages per character.
    struct Region {
        RegionSnapshot snapshot;
        std::string page_map;
        size_t pages_per_char = 1;
    };
    std::vector<Region> regions;
    RuntimeStats stats;
    PurgeStats purge;
    std::string stat_address; // empty: no statistics endpoint
};

std::string json_report(const JsonReportInput& input);

} // namespace faultline
