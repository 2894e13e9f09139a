#include "stat_client.h"

#include <faultline/stat_protocol.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace faultline::cli {

namespace {

// Longer than the runtime's own reply deadline (5 s), so that the server,
// not the client, decides when a slow reply is abandoned.
constexpr int kTimeoutSeconds = 10;
// A reply larger than this is not a statistics report.
constexpr size_t kMaxReply = size_t(256) << 20;

class Socket {
public:
    Socket() : fd_(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
    ~Socket()
    {
        if (fd_ >= 0)
            close(fd_);
    }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    int fd() const { return fd_; }

private:
    int fd_;
};

} // namespace

Result<std::vector<StatClient::Endpoint>> StatClient::endpoints() const
{
    std::ifstream table("/proc/net/unix");
    if (!table)
        return fail(ENOENT, "cannot read /proc/net/unix to find the endpoints");
    // "@faultline/<pid>/" followed by the number, as the last column.
    const std::string prefix = "@" + std::string(stat_protocol::kNamePrefix) + std::to_string(pid_) + "/";
    std::vector<Endpoint> found;
    std::string line;
    while (std::getline(table, line)) {
        const size_t at = line.rfind(' ');
        std::string_view path = std::string_view(line).substr(at == std::string::npos ? 0 : at + 1);
        if (!path.starts_with(prefix))
            continue;
        std::string_view digits = path.substr(prefix.size());
        unsigned n = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
        if (ec != std::errc() || end != digits.data() + digits.size())
            continue;
        // Accepted connections show the listener's name too: keep one.
        if (std::none_of(found.begin(), found.end(), [n](const Endpoint& e) { return e.number == n; }))
            found.push_back({ std::string(path.substr(1)), n });
    }
    std::sort(found.begin(), found.end(), [](const Endpoint& a, const Endpoint& b) { return a.number < b.number; });
    return found;
}

Result<StatClient::Reply> StatClient::query(const Endpoint& endpoint) const
{
    Socket s;
    if (s.fd() < 0)
        return failf(errno, "socket failed: %s", strerror(errno));
    // Bounds connect (a full backlog), send and every read.
    timeval timeout { kTimeoutSeconds, 0 };
    (void)setsockopt(s.fd(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    (void)setsockopt(s.fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_un address;
    const socklen_t length = stat_protocol::make_address(endpoint.name, address);
    const std::string shown = stat_protocol::display(endpoint.name);
    // With timeouts set, an interrupted call is not restarted by the
    // kernel: EINTR is retried here.
    int rc;
    while ((rc = connect(s.fd(), reinterpret_cast<const sockaddr*>(&address), length)) != 0 && errno == EINTR) {
    }
    if (rc != 0)
        return failf(errno, "cannot connect to %s: %s", shown.c_str(), strerror(errno));
    ucred peer {};
    socklen_t peer_length = sizeof peer;
    if (getsockopt(s.fd(), SOL_SOCKET, SO_PEERCRED, &peer, &peer_length) != 0)
        return failf(errno, "cannot read the credentials of %s: %s", shown.c_str(), strerror(errno));
    if (peer.pid != pid_)
        return failf(ESRCH, "%s is served by pid %d, not %d (another pid namespace?)", shown.c_str(), int(peer.pid),
            int(pid_));
    // A refused client is answered without reading its request; the send
    // may then fail (EPIPE) while the refusal waits to be read.
    while (send(s.fd(), stat_protocol::kRequest.data(), stat_protocol::kRequest.size(), MSG_NOSIGNAL) < 0
        && errno == EINTR) {
    }
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = recv(s.fd(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return failf(errno == EAGAIN ? ETIMEDOUT : errno, "no reply from %s: %s", shown.c_str(),
                errno == EAGAIN ? "timed out" : strerror(errno));
        if (n == 0)
            break;
        text.append(buf, size_t(n));
        // One line is the whole reply: stop at its newline even if the
        // connection stays open (a fork child of the runtime may hold a
        // copy of it).
        if (memchr(buf, '\n', size_t(n)))
            break;
        if (text.size() > kMaxReply)
            return failf(EBADMSG, "the reply from %s is too large", shown.c_str());
    }
    const size_t newline = text.find('\n');
    if (newline == std::string::npos)
        return failf(EBADMSG, "the reply from %s was cut short (%zu bytes)", shown.c_str(), text.size());
    text.resize(newline);
    Reply reply;
    if (std::string_view(text).starts_with(stat_protocol::kRefusedPrefix))
        reply.kind = Reply::Kind::Refused;
    else if (std::string_view(text).starts_with(stat_protocol::kErrorPrefix))
        reply.kind = Reply::Kind::Error;
    else
        reply.kind = Reply::Kind::Report;
    reply.text = std::move(text);
    return reply;
}

} // namespace faultline::cli
