// faultline/stat_protocol.h — the statistics endpoint a runtime publishes
// (docs/stat.md): its address and its protocol, shared by the runtime and
// the `faultline stat` tool so that the two can never disagree.
//
// Address: the Linux abstract Unix socket "@faultline/<pid>/<n>" ('@' stands
// for the leading NUL byte of an abstract name, as in /proc/net/unix and
// ss(8)), where <n> numbers the runtimes a process has created (from 0).
//
// Protocol, version 1: the client connects and sends the request line
// "stat 1\n". The server answers with exactly one line and closes:
//   - the runtime's to_json() document followed by '\n' (the document
//     itself never contains a raw newline), or
//   - "refused: <reason>\n" when the peer is neither the runtime's user nor
//     root (sent at once, before any request is read), or
//   - "error: <reason>\n" for a request it does not understand.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

namespace faultline::stat_protocol {

inline constexpr int kVersion = 1;
// The abstract name without its leading NUL is kNamePrefix + "<pid>/<n>".
inline constexpr std::string_view kNamePrefix = "faultline/";
inline constexpr std::string_view kRequest = "stat 1\n";
inline constexpr std::string_view kRefusedPrefix = "refused:";
inline constexpr std::string_view kErrorPrefix = "error:";

// "faultline/<pid>/<n>": the abstract name, without the leading NUL.
inline std::string name(pid_t pid, unsigned n)
{
    return std::string(kNamePrefix) + std::to_string(pid) + "/" + std::to_string(n);
}

// The printable form of an abstract name: "@faultline/<pid>/<n>".
inline std::string display(std::string_view abstract_name) { return "@" + std::string(abstract_name); }

// Fills `out` with the abstract address of `abstract_name` (no leading
// NUL, no '@') and returns its length for bind(2)/connect(2); 0 when the
// name does not fit.
inline socklen_t make_address(std::string_view abstract_name, sockaddr_un& out)
{
    std::memset(&out, 0, sizeof out);
    out.sun_family = AF_UNIX;
    if (abstract_name.size() + 1 > sizeof out.sun_path)
        return 0;
    // sun_path[0] stays NUL: the abstract namespace. The length, not a
    // terminator, delimits the name.
    std::memcpy(out.sun_path + 1, abstract_name.data(), abstract_name.size());
    return socklen_t(offsetof(sockaddr_un, sun_path) + 1 + abstract_name.size());
}

} // namespace faultline::stat_protocol
