// tools/faultline/run_command.h — `faultline run [--stats] [--heap-size SIZE]
// -- COMMAND [ARGS...]`: runs an unmodified program with its heap in
// faultline memory (libfaultline_malloc.so preloaded; docs/heap.md).
#pragma once

#include <span>

namespace faultline::cli {

inline constexpr const char* kRunSynopsis = "run [--stats] [--heap-size SIZE] [--budget SIZE] [--swap DIR|redis://HOST:PORT] -- COMMAND [ARGS...]";

// Execs COMMAND on success (never returns then: its exit status and
// signals are the program's own); otherwise returns the exit status of the
// refusal: 2 usage, 126 not a dynamically linked program, 127 not found,
// 1 the preload library is missing.
int run_command(std::span<char* const> args);

} // namespace faultline::cli
