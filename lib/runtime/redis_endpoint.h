// runtime/redis_endpoint.h — where a Redis server is and how to talk to it:
// the redis:// URL of Config::swap_path (docs/far-memory.md), and the one
// way this library opens a connection (timeouts, AUTH, a PING), used for
// the URL's node and, in a cluster, for every node it names.
#pragma once

#include <faultline/result.h>

#include <string>
#include <vector>

struct redisContext;

namespace faultline {

// Where the server is and how long to wait for it (parsed from the URL).
struct RedisEndpoint {
    std::string host;
    int port = 6379;
    std::string user;
    std::string password; // from the URL, else $FAULTLINE_REDIS_PASSWORD; never logged
    unsigned connect_timeout_ms = 1000;
    unsigned command_timeout_ms = 1000;

    static bool is_url(const std::string& s) noexcept { return s.rfind("redis://", 0) == 0; }
    static Result<RedisEndpoint> parse(const std::string& url);

    // A connection to host:port with this endpoint's timeouts and
    // credentials, authenticated and answering PING. ECONNREFUSED,
    // ETIMEDOUT, EHOSTUNREACH, EACCES (a refused or missing password).
    Result<redisContext*> connect(const std::string& host, int port) const;

    // One SCAN MATCH `pattern` step on `c` from `cursor` (advanced; "0" again
    // at the end): `keys` gets the reply's keys. 1: a step done; 0: an
    // unexpected reply; -1: no reply (the connection cannot be trusted).
    static int scan_step(redisContext* c, const std::string& pattern, std::string& cursor, std::vector<std::string>& keys);
};

} // namespace faultline
