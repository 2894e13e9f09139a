// tools/faultline/stat_client.h — finds the statistics endpoints of a
// process and asks one for its report (protocol: faultline/stat_protocol.h).
#pragma once

#include <faultline/result.h>

#include <string>
#include <sys/types.h>
#include <vector>

namespace faultline::cli {

class StatClient {
public:
    struct Endpoint {
        std::string name; // abstract name without the leading NUL: "faultline/<pid>/<n>"
        unsigned number = 0;
    };
    struct Reply {
        enum class Kind { Report, Refused, Error };
        Kind kind = Kind::Error;
        std::string text; // the JSON document, or the server's reason
    };

    explicit StatClient(pid_t pid) : pid_(pid) {}

    // The endpoints `pid` listens on in this network namespace, by number,
    // read from /proc/net/unix (abstract names cannot be listed otherwise).
    // ENOENT: the table cannot be read.
    Result<std::vector<Endpoint>> endpoints() const;
    // Connects, checks that the listener is `pid` itself (another pid
    // namespace sharing this network namespace could own the name), sends
    // the request and reads the one-line reply. Errors: the connection's
    // errno (ECONNREFUSED: the runtime went away), ETIMEDOUT, EBADMSG.
    Result<Reply> query(const Endpoint& endpoint) const;

private:
    pid_t pid_;
};

} // namespace faultline::cli
