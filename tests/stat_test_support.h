// Helpers for the statistics endpoint's tests: a raw client of the
// protocol (faultline/stat_protocol.h) and the endpoints /proc/net/unix
// lists for a process.
#pragma once

#include <faultline/stat_protocol.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <vector>

namespace faultline::testing {

// Connects to "@faultline/..."; the descriptor, or -errno. Reads and
// writes on it time out after 20 s, so that a broken endpoint fails a test
// instead of hanging it. With a timeout set, the kernel does not restart
// these calls after an interruption (a signal, or io_uring task work the
// runtime's rings queue to this thread): EINTR is retried here.
inline int connect_to(std::string_view address)
{
    if (address.starts_with("@"))
        address.remove_prefix(1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    timeval timeout { 20, 0 };
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_un sa;
    socklen_t len = stat_protocol::make_address(address, sa);
    int rc;
    while ((rc = connect(fd, reinterpret_cast<const sockaddr*>(&sa), len)) != 0 && errno == EINTR) {
    }
    if (rc != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

// Everything `fd` receives until the peer closes (or a read times out).
inline std::string read_all(int fd)
{
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return out;
        out.append(buf, size_t(n));
    }
}

// Sends `request` on a connection; false if it could not be sent whole.
inline bool send_request(int fd, std::string_view request = stat_protocol::kRequest)
{
    ssize_t n;
    while ((n = send(fd, request.data(), request.size(), MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    return n == ssize_t(request.size());
}

// Sends `request` and returns everything the endpoint sends until it
// closes ("" if the connection failed).
inline std::string ask(std::string_view address, std::string_view request = stat_protocol::kRequest)
{
    int fd = connect_to(address);
    if (fd < 0)
        return {};
    (void)send_request(fd, request);
    std::string reply = read_all(fd);
    close(fd);
    return reply;
}

// "@faultline/<pid>/<n>" names listed in /proc/net/unix, sorted, each once.
inline std::vector<std::string> listening_endpoints(pid_t pid)
{
    const std::string prefix = "@" + std::string(stat_protocol::kNamePrefix) + std::to_string(pid) + "/";
    std::vector<std::string> out;
    std::ifstream table("/proc/net/unix");
    std::string line;
    while (std::getline(table, line)) {
        const size_t at = line.rfind(' ');
        std::string path = at == std::string::npos ? line : line.substr(at + 1);
        if (path.rfind(prefix, 0) == 0 && std::find(out.begin(), out.end(), path) == out.end())
            out.push_back(path);
    }
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace faultline::testing
