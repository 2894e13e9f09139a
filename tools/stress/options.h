// tools/stress/options.h — faultline-stress's command line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stress {

struct Options {
    double seconds = 60;
    unsigned threads = 32;
    unsigned mutators = 4;
    unsigned slots = 128;
    uint64_t seed = 0;
    unsigned handler_threads = 0; // 0: each phase picks its own
    unsigned phases = 0;          // 0: chosen from the duration
    unsigned first_phase = 1;     // the configuration the first phase uses (1-3; the rest follow in turn)
    double watchdog_seconds = 5;
    // Nice value added to the accessor threads. Faults only happen where the
    // mutators keep dropping pages, and with 32 accessors against a handful
    // of mutators and handler threads, equal shares starve the churn on small
    // machines; +5 roughly triples the others' share. (Measured on 2 CPUs:
    // about 30% more faults served than at 0.)
    int accessor_nice = 5;
    // Operations (mutator/<name>.cc) never drawn: only for isolating a
    // failure (a library bug the tool found stays checked by default).
    // Skipping map_clonable leaves no copy-on-write slot at all.
    std::vector<std::string> skip;
};

// Parses the command line; prints the usage and exits with status 2 on a bad
// argument (and on --help).
Options parse_options(int argc, char** argv);

} // namespace stress
