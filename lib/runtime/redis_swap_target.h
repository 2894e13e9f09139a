// runtime/redis_swap_target.h — far memory: the swap pager's pages in Redis.
//
// Chosen with Config::swap_path = "redis://[user[:password]@]host[:port]
// [?connect_timeout_ms=N&command_timeout_ms=N]" (docs/far-memory.md). Each
// swapped page is one binary value under a key of this runtime's own
// namespace, "faultline:<host>:<pid>:<random>:<slot>", so two processes —
// or two runtimes of one — never share a key.
//
// Reads come from handler threads, which must neither block on the network
// nor allocate: a read is put in a fixed ring and answered "pending"; the
// target's own thread pipelines the GETs on its own connection and
// completes each io::Operation, like an io_uring completion. Writes come
// from the evictor, which may block: one pipeline of SETs per batch on a
// second connection. Freed slots are UNLINKed in batches by the target's
// thread (release() only puts the number in a fixed ring).
//
// Failures never hang and never give zeros: a read that cannot be done (no
// connection, a timeout, a missing value or one of the wrong size) completes
// with -errno, which the swap pager turns into SIGBUS; a failed write keeps
// the page resident. A lost connection is made again on the next need, no
// sooner than a backoff that doubles up to kMaxBackoff.
//
// When the URL's node belongs to a Redis Cluster (it answers CLUSTER SLOTS),
// the same threads do the same work through a RedisClusterClient each: a
// connection per node, routing by key slot, MOVED/ASK, and SETs that count
// only once a replica has them (WAIT) when the cluster has replicas.
#pragma once

#include "memory/swap_target.h"
#include "runtime/redis_endpoint.h"

#include <faultline/result.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <sys/types.h>

struct redisContext;
struct redisReply;

namespace faultline {

class RedisClusterClient;

class RedisSwapTarget final : public memory::SwapTarget {
public:
    // Connects (and authenticates) now, so that a wrong address or password
    // fails Runtime::create with its errno: ECONNREFUSED, ETIMEDOUT,
    // EACCES (refused password), EHOSTUNREACH (unknown host).
    static Result<std::unique_ptr<RedisSwapTarget>> create(const std::string& url, size_t page_size);
    ~RedisSwapTarget() override;

    bool read(uint32_t slot, void* buffer, io::Operation* op, memory::IoPort* io) noexcept override;
    void write(Write* writes, size_t count) noexcept override;
    void release(uint32_t slot) noexcept override;

    // "faultline:<host>:<pid>:<random>:" — every key of this target starts so.
    const std::string& prefix() const noexcept { return prefix_; }

private:
    // Reads waiting for the thread; past this a fault retries.
    static constexpr size_t kReadCapacity = 256;
    // Freed slots waiting for their UNLINK; past this the number is dropped:
    // the key stays until the slot is written again or the target goes
    // (its namespace is deleted then), so a drop costs capacity, not data.
    static constexpr size_t kReleaseCapacity = 16384;
    static constexpr size_t kPipeline = 64; // GETs in flight per round trip
    static constexpr std::chrono::milliseconds kMaxBackoff { 2000 };

    struct ReadRequest {
        uint32_t slot;
        void* buffer;
        io::Operation* op;
    };
    // One connection and when it may be tried again after a failure.
    struct Link {
        redisContext* ctx = nullptr;
        std::chrono::milliseconds backoff { 0 };
        std::chrono::steady_clock::time_point retry_at {};
    };

    RedisSwapTarget(RedisEndpoint endpoint, size_t page_size, std::string prefix);
    Result<redisContext*> connect() const;
    // A live connection, or null while the backoff runs or the server is
    // unreachable (the failure is logged once per outage).
    redisContext* ensure(Link& link) noexcept;
    void drop(Link& link, const char* why) noexcept;
    size_t key(char* out, uint32_t slot) const noexcept;
    void run() noexcept;
    void serve_reads(ReadRequest* batch, size_t n) noexcept;
    // A GET's reply into the read's buffer: the page's size, or -EIO (a
    // missing value or one of another size is data lost, never zeros).
    int32_t read_result(const redisReply* r, const ReadRequest& q) const noexcept;
    // Pops the queued releases and UNLINKs them on `link` (release_lock_
    // held: an UNLINK must never land after a SET that reused the slot).
    void unlink_released(Link& link) noexcept;
    void delete_namespace() noexcept;
    // The same, on a Redis Cluster: the
    // URL's node said CLUSTER SLOTS, and every command goes through the
    // thread's RedisClusterClient.
    void cluster_serve_reads(ReadRequest* batch, size_t n) noexcept;
    void cluster_write(Write* writes, size_t count) noexcept;
    void cluster_unlink(RedisClusterClient& client, const uint32_t* slots, size_t n);
    void cluster_delete_namespace() noexcept;
    void cluster_sweep_dead(const char* host) noexcept;
    // At start: the keys of this host's processes that are gone (a program
    // killed, or one that exited without destroying its runtime, as the
    // preloaded heap never does). A SCAN of the whole keyspace, once.
    void sweep_dead(const char* host) noexcept;

    RedisEndpoint endpoint_;
    size_t page_;
    std::string prefix_;
    std::unique_ptr<char[]> staging_; // the evictor's copy of the page it sends (write())

    std::mutex lock_; // the read ring, the release ring, stopping_
    std::condition_variable wake_;
    std::unique_ptr<ReadRequest[]> reads_;
    size_t read_head_ = 0, read_count_ = 0;
    std::unique_ptr<uint32_t[]> releases_;
    size_t release_head_ = 0, release_count_ = 0;
    uint64_t releases_dropped_ = 0;
    bool stopping_ = false;

    // Held while UNLINKs are sent and answered, and by write() for a whole
    // batch: UNLINK slot N then SET slot N (reused) always reach the server
    // in that order.
    std::mutex release_lock_;
    Link reader_; // the thread's
    Link writer_; // the evictor's (write(), under release_lock_)
    // A cluster: each thread's own client (then reader_ and writer_ are
    // unused), else null.
    std::unique_ptr<RedisClusterClient> cluster_reader_, cluster_writer_;
    std::thread thread_;
    pid_t owner_; // a fork child's copy neither joins the parent's thread nor deletes its keys
};

} // namespace faultline
