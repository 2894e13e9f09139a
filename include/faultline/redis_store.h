// faultline/redis_store.h — a page store whose pages live in Redis (far
// memory for store regions: Runtime::map_store over memory of other
// machines; docs/far-memory.md, "RedisStore").
//
// Each page of the store is one binary value of exactly one page under
//   faultline:<host>:<pid>:<random>:store:<name>:<page index>
// — a namespace of this store object alone, so two processes (or two stores
// of one) never share a key. The same redis:// URL as Config::swap_path
// (one node, or any node of a Redis Cluster as the seed; AUTH from the URL
// or $FAULTLINE_REDIS_PASSWORD, never logged).
//
// A store starts all zeros: a page never written has no key and reads
// zeros. A page this store wrote whose key is gone (the server flushed or
// restarted), or whose value is not one page long, is corruption: read()
// returns -EIO (SIGBUS in the faulting threads) and logs the key. Reads of
// N pages are one pipeline of N GETs (one per master on a cluster); writes
// one pipeline of SETs, which on a cluster with replicas count only once a
// replica has them (WAIT). No call waits longer than the URL's timeouts and
// a few bounded retries: a dead server is an error, never a hang.
//
// The keys live as long as the store object: its destructor UNLINKs them
// all; discard() UNLINKs a range earlier. The keys of a process that died
// are deleted by the next RedisStore or Redis swap target started on the
// same host (pid no longer alive). Pages do not outlive their process.
#pragma once

#include <faultline/export.h>
#include <faultline/result.h>
#include <faultline/store.h>

#include <cstdint>
#include <memory>
#include <string>

namespace faultline {

struct RedisStoreOptions {
    // redis://[user[:password]@]host[:port][?connect_timeout_ms=N&command_timeout_ms=N]
    std::string url;
    // Bytes, a positive multiple of the page size.
    uint64_t size = 0;
    // In the keys and log lines: 1 to 64 of [A-Za-z0-9_.-] ("" = "store").
    std::string name;
};

class FAULTLINE_API RedisStore final : public Store {
public:
    // Connects now (a pool of connections, AUTH, PING, CLUSTER SLOTS) and
    // deletes this host's dead processes' keys. EINVAL (bad URL, size or
    // name), ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH (unknown host), EACCES
    // (password refused or missing), EPROTO (a cluster without a slot map),
    // ENOMEM.
    static Result<std::shared_ptr<RedisStore>> create(const RedisStoreOptions& options);
    ~RedisStore() override; // UNLINKs every key of the store (not in a fork child)
    RedisStore(const RedisStore&) = delete;
    RedisStore& operator=(const RedisStore&) = delete;

    uint64_t size() noexcept override;
    int64_t read(void* buffer, size_t bytes, uint64_t offset) noexcept override;
    bool writable() const noexcept override { return true; }
    int64_t write(const void* buffer, size_t bytes, uint64_t offset) noexcept override;
    // Every write() was acknowledged by the server (and by a replica on a
    // cluster with replicas) before it returned: nothing is left to flush.
    int flush() noexcept override { return 0; }

    // UNLINKs the pages of [offset, offset + bytes) (page-aligned): they read
    // zeros afterwards and cost the server nothing. The Store interface has
    // no call for pages a program freed, so this is the program's to make —
    // after unmapping that range (a resident dirty page would be written
    // back again). 0, -EINVAL (unaligned or past the size), -EIO, -ENOTCONN.
    int discard(uint64_t offset, uint64_t bytes) noexcept;

    // "faultline:<host>:<pid>:<random>:store:<name>:" — every key starts so.
    const std::string& key_prefix() const noexcept;
    // The URL's node belongs to a Redis Cluster; and its master count.
    bool cluster() const noexcept;
    size_t masters() const noexcept;

private:
    struct Impl;
    explicit RedisStore(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

} // namespace faultline
