// runtime/redis_namespace.h — whose a Redis key is: the per-runtime
// namespaces of the swap target and of RedisStore, and the start-up sweep
// of the keys dead processes left (docs/far-memory.md, "Key layout").
//
// Every key this library writes starts "faultline:<host>:<pid>:<random>:",
// so that the one sweep — "this host's keys whose pid names no process" —
// reclaims what any kind of user left, swap target or store.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

namespace faultline {

class RedisPageClient;

class RedisNamespace {
public:
    // gethostname(), with ':' (the key's separator) made '_'.
    static std::string host();
    // "faultline:<host>:<pid>:<64 random bits in hex>:" — a fresh one per
    // call, so two runtimes (or stores) of one process never share keys.
    static std::string fresh_prefix(const std::string& host);
    // The key of a process of this host that is gone: its pid (the field at
    // `pid_at`) names no process. `dead` remembers each pid's answer.
    static bool is_dead(std::string_view key, size_t pid_at, std::unordered_map<long, bool>& dead);
    // UNLINKs the keys of `host`'s dead processes through `client` (a SCAN
    // of every master). Returns how many went.
    static size_t sweep_dead(RedisPageClient& client, const std::string& host) noexcept;
    // UNLINKs every key under `prefix`. False when a node could not be
    // scanned to the end.
    static bool delete_all(RedisPageClient& client, const std::string& prefix) noexcept;
};

} // namespace faultline
