// tools/faultline/exit_codes.h — the exit statuses every subcommand uses
// (docs/stat.md).
#pragma once

namespace faultline::cli {

enum ExitCode : int {
    kExitOk = 0,
    kExitNotFound = 1, // no such process, no runtime in it, or no usable reply
    kExitUsage = 2,
    kExitRefused = 3,  // the runtime refused this user
};

} // namespace faultline::cli
