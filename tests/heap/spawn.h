// Runs a /bin/sh script as a child process for the heap tests, with or
// without the preloaded heap, capturing what it prints.
#pragma once

#include <string>

namespace faultline::heap_testing {

struct Spawned {
    int status = -1; // as waitpid(2) reports it; -1 if it could not start
    std::string out;
    std::string err;
};

// `preload`: the child gets LD_PRELOAD=$FAULTLINE_TEST_PRELOAD; otherwise it
// runs with no LD_PRELOAD at all.
Spawned spawn_script(const std::string& script, bool preload);

} // namespace faultline::heap_testing
