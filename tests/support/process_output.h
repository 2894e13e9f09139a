// Runs a command (an example program, as a user would) and collects what it
// prints: what tests of the examples share.
#pragma once

#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace faultline::testing {

struct ProcessOutput {
    std::string out; // stdout and whatever the command sends there (2>&1)
    int status = -1; // as waitpid(2) reports it; -1 if it could not start
};

inline ProcessOutput run_command(const std::string& command)
{
    ProcessOutput r;
    FILE* p = popen(command.c_str(), "r");
    if (!p)
        return r;
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof buf, p))
        r.out.append(buf, n);
    r.status = pclose(p);
    return r;
}

} // namespace faultline::testing
