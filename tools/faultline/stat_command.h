// tools/faultline/stat_command.h — `faultline stat PID [--json] [--runtime N]`:
// the live region table and counters of a process's runtime(s), read from
// their statistics endpoints (docs/stat.md).
#pragma once

#include <span>

namespace faultline::cli {

inline constexpr const char* kStatSynopsis = "stat PID [--json] [--runtime N]";

// Returns the exit status (exit_codes.h).
int stat_command(std::span<char* const> args);

} // namespace faultline::cli
