// runtime/redis_cluster_client.h — the Redis swap target's commands when its
// server belongs to a Redis Cluster (docs/far-memory.md, "Redis Cluster").
//
// One client per thread that talks to the cluster (the target's thread, the
// evictor): each has its own slot map (RedisClusterMap) and one connection
// per node it needs, made on demand with the endpoint's timeouts and
// credentials and, after a failure, no sooner than a backoff of its own.
//
// execute() runs a batch of single-key commands: split by the master of
// each key's slot into one pipeline per node, a MOVED updates the map (and
// reloads it from CLUSTER SLOTS) and sends the command again to the new
// master, an ASK sends ASKING then the command to the node named, without
// touching the map. A lost node, CLUSTERDOWN or TRYAGAIN reload the map
// from any node that answers and retry after a short backoff. Everything is
// bounded (kAttempts rounds): what is still not done fails with -errno.
//
// With replicas in the cluster, SETs are durable: each node's pipeline ends
// with WAIT 1, and a SET a replica did not acknowledge fails, so the swap
// pager keeps its page resident rather than trusting one machine with it.
#pragma once

#include "runtime/redis_cluster_map.h"
#include "runtime/redis_endpoint.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

struct redisContext;
struct redisReply;

namespace faultline {

class RedisClusterClient {
public:
    enum class Kind : uint8_t { Get, Set, Unlink };
    struct Op {
        Kind kind;
        const char* key;
        size_t key_len;
        // Set: the value. Sent again on a redirect or a retry, so it must
        // stay valid and unchanged until execute() returns: a private copy,
        // never the program's page (which an unmap may remove meanwhile).
        const char* value = nullptr;
        size_t value_len = 0;
        // Results. Get: the reply (a string, or nil) when error is 0; the
        // caller frees it (freeReplyObject). Otherwise null.
        redisReply* reply = nullptr;
        int error = 0; // 0, -ENOSPC (OOM), -EIO or -ENOTCONN
    };

    // `role` names the thread's connections in log lines.
    RedisClusterClient(const RedisEndpoint& seed, const char* role);
    ~RedisClusterClient(); // closes the connections (sends nothing: safe in a fork child)
    RedisClusterClient(const RedisClusterClient&) = delete;
    RedisClusterClient& operator=(const RedisClusterClient&) = delete;

    // Takes `seed`, a connection to the URL's node whose CLUSTER SLOTS reply
    // is `slots`, as the first of its connections, and that reply as its
    // map. EPROTO when the reply is no usable slot list.
    Result<void> start(redisContext* seed, const redisReply* slots);

    void execute(Op* ops, size_t count) noexcept;

    // SCAN MATCH `pattern` on every master; `keys` gets each reply's keys
    // (it may execute() on this client). False when a master could not be
    // scanned to the end.
    bool scan(const std::string& pattern, const std::function<void(std::vector<std::string>&)>& keys) noexcept;

    // The cluster has replicas (seen at start or in any map since): every
    // node's SETs wait for one.
    bool durable() const noexcept { return durable_; }
    const RedisClusterMap& map() const noexcept { return map_; }

private:
    static constexpr int kAttempts = 6;
    static constexpr std::chrono::milliseconds kMaxBackoff { 2000 };
    // How long a master whose WAIT found no replica gets no SETs (then
    // the next batch asks again: a replica may be back).
    static constexpr std::chrono::milliseconds kReplicaRecheck { 1000 };

    struct Link {
        redisContext* ctx = nullptr;
        std::chrono::milliseconds backoff { 0 };
        std::chrono::steady_clock::time_point retry_at {};
    };

    redisContext* ensure(uint16_t node) noexcept;
    void drop(uint16_t node, const char* why) noexcept;
    // CLUSTER SLOTS from the first node that answers: nodes connected now
    // first, then every other node known (the URL's among them).
    bool refresh() noexcept;
    void run_pipeline(uint16_t node, Op* ops, const std::vector<size_t>& group, std::vector<size_t>& retry,
        bool& reload) noexcept;

    RedisEndpoint seed_;
    const char* role_;
    RedisClusterMap map_;
    std::vector<Link> links_; // by node number
    // Per execute(), kept to spare allocations: the op's slot, the node an
    // ASK named (kNone: the slot's master), the node it goes to.
    std::vector<uint16_t> slot_, ask_, target_;
    std::vector<std::chrono::steady_clock::time_point> no_replica_until_; // by node
    bool durable_ = false;
    bool stalled_ = false; // this round met a node down or busy: the next one waits first
    bool wait_logged_ = false;
};

} // namespace faultline
