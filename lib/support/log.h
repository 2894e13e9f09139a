// log.h — the library's logger.
//
// spdlog, silent unless FAULTLINE_LOG names a level (trace, debug, info,
// warn, error, critical, off). The fault path logs at debug or below only,
// and checks the level before formatting, so a silent logger costs one
// branch per fault. With FAULTLINE_LOG=debug or trace, formatting may
// allocate on handler threads: debugging output trades that rule for
// visibility.
#pragma once

#include <spdlog/spdlog.h>

namespace faultline::log {

spdlog::logger& logger();

template <typename... Args>
inline void trace(spdlog::format_string_t<Args...> fmt, Args&&... args)
{
    auto& l = logger();
    if (l.should_log(spdlog::level::trace))
        l.trace(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
inline void debug(spdlog::format_string_t<Args...> fmt, Args&&... args)
{
    auto& l = logger();
    if (l.should_log(spdlog::level::debug))
        l.debug(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
inline void info(spdlog::format_string_t<Args...> fmt, Args&&... args)
{
    logger().info(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
inline void warn(spdlog::format_string_t<Args...> fmt, Args&&... args)
{
    logger().warn(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
inline void error(spdlog::format_string_t<Args...> fmt, Args&&... args)
{
    logger().error(fmt, std::forward<Args>(args)...);
}

} // namespace faultline::log
