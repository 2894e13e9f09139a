// faultline — the command-line tool: `faultline SUBCOMMAND ...`.
//
// Each subcommand is one row of kCommands and lives in its own file; main
// only dispatches.
#include "exit_codes.h"
#include "run_command.h"
#include "stat_command.h"

#include <cstdio>
#include <cstring>
#include <span>

namespace {

using faultline::cli::kExitOk;
using faultline::cli::kExitUsage;

struct Subcommand {
    const char* name;
    const char* synopsis;
    int (*run)(std::span<char* const> args); // the arguments after the subcommand's name
};

constexpr Subcommand kCommands[] = {
    { "run", faultline::cli::kRunSynopsis, faultline::cli::run_command },
    { "stat", faultline::cli::kStatSynopsis, faultline::cli::stat_command },
};

void usage(FILE* out)
{
    fprintf(out, "usage:\n");
    for (const Subcommand& c : kCommands)
        fprintf(out, "  faultline %s\n", c.synopsis);
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 2) {
        usage(stderr);
        return kExitUsage;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return kExitOk;
    }
    for (const Subcommand& c : kCommands)
        if (!strcmp(argv[1], c.name))
            return c.run(std::span<char* const>(argv + 2, size_t(argc - 2)));
    fprintf(stderr, "faultline: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return kExitUsage;
}
