// runtime/redis_page_client.h — one thread's way to run batches of page
// commands (GET, SET, UNLINK) against the server of a redis:// URL, whether
// that server is one node or a member of a Redis Cluster.
//
// RedisStore (faultline/redis_store.h) keeps a few of these, one per call in
// flight: a hiredis context is not thread-safe, and a store is called from
// several store threads and the evictor at once. connect() asks the URL's
// node CLUSTER SLOTS once: a node without cluster support is used alone
// (one pipeline per batch on one connection, made again after a failure no
// sooner than a backoff), a cluster node through a RedisClusterClient
// (routing, MOVED/ASK, a pipeline per master, WAIT for a replica).
#pragma once

#include "runtime/redis_cluster_client.h"
#include "runtime/redis_endpoint.h"

#include <faultline/result.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct redisContext;

namespace faultline {

class RedisPageClient {
public:
    using Op = RedisClusterClient::Op;
    using Kind = RedisClusterClient::Kind;

    // Connects to the endpoint's node (timeouts, AUTH, PING): ECONNREFUSED,
    // ETIMEDOUT, EHOSTUNREACH, EACCES; EPROTO for a cluster without a slot
    // map. `role` names the connection in log lines.
    static Result<std::unique_ptr<RedisPageClient>> connect(const RedisEndpoint& endpoint, const char* role);
    ~RedisPageClient();
    RedisPageClient(const RedisPageClient&) = delete;
    RedisPageClient& operator=(const RedisPageClient&) = delete;

    // Runs every op (Op's fields say what each gets back): one pipeline on
    // one node, one per master on a cluster. Bounded: a node that does not
    // answer within the command timeout fails its ops with -EIO, no
    // connection with -ENOTCONN.
    void execute(Op* ops, size_t count) noexcept;
    // SCAN MATCH `pattern` on every master; `keys` gets each reply's keys
    // and may execute() on this client. False when a node could not be
    // scanned to the end.
    bool scan(const std::string& pattern, const std::function<void(std::vector<std::string>&)>& keys) noexcept;

    bool cluster() const noexcept { return cluster_ != nullptr; }
    // Masters that hold keys (1 for one node).
    size_t masters() const noexcept;
    // SETs wait for a replica (a cluster with replicas).
    bool durable() const noexcept { return cluster_ && cluster_->durable(); }

private:
    static constexpr std::chrono::milliseconds kMaxBackoff { 2000 };

    RedisPageClient(const RedisEndpoint& endpoint, const char* role);
    redisContext* ensure() noexcept;
    void drop(const char* why) noexcept;

    RedisEndpoint endpoint_;
    const char* role_;
    redisContext* ctx_ = nullptr; // one node
    std::chrono::milliseconds backoff_ { 0 };
    std::chrono::steady_clock::time_point retry_at_ {};
    std::unique_ptr<RedisClusterClient> cluster_;
};

} // namespace faultline
