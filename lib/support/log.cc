#include "support/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>

namespace faultline::log {

spdlog::logger& logger()
{
    // Built once, on first use (always an API thread: Runtime::create logs
    // before any handler thread exists), and never registered globally so an
    // application's own spdlog setup is left alone.
    static spdlog::logger* instance = [] {
        auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        auto* l = new spdlog::logger("faultline", sink);
        l->set_pattern("[%H:%M:%S.%e] [faultline] [%l] [tid %t] %v");
        const char* env = std::getenv("FAULTLINE_LOG");
        l->set_level(env && *env ? spdlog::level::from_str(env) : spdlog::level::off);
        l->flush_on(spdlog::level::trace);
        return l;
    }();
    return *instance;
}

} // namespace faultline::log
