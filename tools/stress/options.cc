// tools/stress/options.cc — parsing faultline-stress's command line.
#include "options.h"

#include "model.h" // kHotSlots: --slots must cover the hot slots

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace stress {

namespace {

[[noreturn]] void usage(const char* message)
{
    if (message)
        std::fprintf(stderr, "faultline-stress: %s\n", message);
    std::fprintf(stderr,
        "usage: faultline-stress [SECONDS] [--threads N] [--mutators N] [--slots N]\n"
        "                        [--seed N] [--handler-threads N] [--phases N] [--watchdog SECONDS]\n"
        "                        [--accessor-nice N] [--first-phase N] [--skip OPERATION[,OPERATION...]]\n");
    std::exit(2);
}

uint64_t parse_number(const char* text, const char* what, uint64_t lo, uint64_t hi)
{
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(text, &end, 0);
    if (errno || !end || *end || v < lo || v > hi) {
        std::string m = std::string("bad value for ") + what + ": '" + text + "'";
        usage(m.c_str());
    }
    return v;
}

double parse_seconds(const char* text, const char* what)
{
    char* end = nullptr;
    double v = std::strtod(text, &end);
    if (!end || *end || !(v > 0) || v > 1e7) {
        std::string m = std::string("bad value for ") + what + ": '" + text + "'";
        usage(m.c_str());
    }
    return v;
}

} // namespace

Options parse_options(int argc, char** argv)
{
    Options o;
    o.seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^ uint64_t(getpid());
    bool have_seconds = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc)
                usage((a + " needs a value").c_str());
            return argv[++i];
        };
        if (a == "-h" || a == "--help")
            usage(nullptr);
        else if (a == "--threads")
            o.threads = unsigned(parse_number(value(), "--threads", 1, 256));
        else if (a == "--mutators")
            o.mutators = unsigned(parse_number(value(), "--mutators", 1, 64));
        else if (a == "--slots")
            o.slots = unsigned(parse_number(value(), "--slots", kHotSlots, 1024));
        else if (a == "--seed")
            o.seed = parse_number(value(), "--seed", 0, UINT64_MAX);
        else if (a == "--handler-threads")
            o.handler_threads = unsigned(parse_number(value(), "--handler-threads", 1, 64));
        else if (a == "--phases")
            o.phases = unsigned(parse_number(value(), "--phases", 1, 1000));
        else if (a == "--watchdog")
            o.watchdog_seconds = parse_seconds(value(), "--watchdog");
        else if (a == "--accessor-nice")
            o.accessor_nice = int(parse_number(value(), "--accessor-nice", 0, 19));
        else if (a == "--first-phase")
            o.first_phase = unsigned(parse_number(value(), "--first-phase", 1, 5));
        else if (a == "--skip") {
            std::string list = value();
            for (size_t at = 0; at <= list.size();) {
                const size_t comma = std::min(list.find(',', at), list.size());
                if (comma > at)
                    o.skip.push_back(list.substr(at, comma - at));
                at = comma + 1;
            }
        } else if (!a.empty() && a[0] != '-' && !have_seconds) {
            o.seconds = parse_seconds(a.c_str(), "SECONDS");
            have_seconds = true;
        } else
            usage(("unknown argument '" + a + "'").c_str());
    }
    return o;
}

} // namespace stress
