#include "runtime/redis_page_client.h"

#include "support/log.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace faultline {

namespace {

struct ReplyFree {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

} // namespace

RedisPageClient::RedisPageClient(const RedisEndpoint& endpoint, const char* role)
    : endpoint_(endpoint)
    , role_(role)
{
}

RedisPageClient::~RedisPageClient()
{
    if (ctx_)
        redisFree(ctx_); // sends nothing: safe in a fork child
}

Result<std::unique_ptr<RedisPageClient>> RedisPageClient::connect(const RedisEndpoint& endpoint, const char* role)
{
    std::unique_ptr<RedisPageClient> client(new RedisPageClient(endpoint, role));
    auto c = endpoint.connect(endpoint.host, endpoint.port);
    if (!c)
        return std::unexpected(c.error());
    client->ctx_ = *c;
    // A cluster node answers CLUSTER SLOTS with its map; a server without
    // cluster support refuses it and is used as one node.
    Reply slots(static_cast<redisReply*>(redisCommand(client->ctx_, "CLUSTER SLOTS")));
    if (!slots)
        return failf(EIO, "Redis at %s:%d: no answer to CLUSTER SLOTS: %s", endpoint.host.c_str(), endpoint.port,
            client->ctx_->errstr);
    if (slots->type == REDIS_REPLY_ARRAY) {
        client->cluster_ = std::make_unique<RedisClusterClient>(endpoint, role);
        auto started = client->cluster_->start(std::exchange(client->ctx_, nullptr), slots.get());
        if (!started)
            return std::unexpected(started.error());
    }
    return client;
}

size_t RedisPageClient::masters() const noexcept
{
    return cluster_ ? cluster_->map().masters().size() : 1;
}

redisContext* RedisPageClient::ensure() noexcept
{
    if (ctx_)
        return ctx_;
    const auto now = std::chrono::steady_clock::now();
    if (now < retry_at_)
        return nullptr;
    auto c = endpoint_.connect(endpoint_.host, endpoint_.port);
    if (c) {
        log::info("store: reconnected to Redis at {}:{} ({})", endpoint_.host, endpoint_.port, role_);
        ctx_ = *c;
        backoff_ = std::chrono::milliseconds(0);
        return ctx_;
    }
    if (backoff_.count() == 0)
        log::error("store: {} ({}, retrying with backoff)", c.error().message(), role_);
    backoff_ = std::clamp(backoff_ * 2, std::chrono::milliseconds(50), kMaxBackoff);
    retry_at_ = now + backoff_;
    return nullptr;
}

void RedisPageClient::drop(const char* why) noexcept
{
    if (!ctx_)
        return;
    log::error("store: lost the Redis connection to {}:{} ({}, {}): {}", endpoint_.host, endpoint_.port, role_, why,
        ctx_->errstr);
    redisFree(ctx_);
    ctx_ = nullptr;
    // The first try is immediate (a restarted server is back at once); a
    // failed one starts the backoff in ensure().
    retry_at_ = {};
}

void RedisPageClient::execute(Op* ops, size_t count) noexcept
{
    if (count == 0)
        return;
    if (cluster_)
        return cluster_->execute(ops, count);
    redisContext* c = ensure();
    size_t answered = 0;
    if (c) {
        size_t queued = 0;
        for (; queued < count; ++queued) {
            const Op& op = ops[queued];
            const int rc = op.kind == Kind::Get ? redisAppendCommand(c, "GET %b", op.key, op.key_len)
                : op.kind == Kind::Set          ? redisAppendCommand(c, "SET %b %b", op.key, op.key_len, op.value, op.value_len)
                                                : redisAppendCommand(c, "UNLINK %b", op.key, op.key_len);
            if (rc != REDIS_OK)
                break;
        }
        for (; answered < queued; ++answered) {
            void* raw = nullptr;
            if (redisGetReply(c, &raw) != REDIS_OK) {
                drop("pipeline");
                break;
            }
            Op& op = ops[answered];
            auto* r = static_cast<redisReply*>(raw);
            if (r->type == REDIS_REPLY_ERROR) {
                // maxmemory reached (noeviction): full, not broken.
                const bool oom = r->len >= 3 && !memcmp(r->str, "OOM", 3);
                op.error = oom ? -ENOSPC : -EIO;
                log::warn("store: Redis refused a command: {}", std::string(r->str, r->len));
                freeReplyObject(r);
            } else if (op.kind == Kind::Get) {
                op.reply = r;
                op.error = 0;
            } else {
                op.error = 0;
                freeReplyObject(r);
            }
        }
        // Appended but unanswered: the connection cannot be trusted.
        if (answered < count && ctx_)
            drop("pipeline");
    }
    // No connection: fail now rather than wait for one.
    for (; answered < count; ++answered)
        ops[answered].error = c ? -EIO : -ENOTCONN;
}

bool RedisPageClient::scan(const std::string& pattern, const std::function<void(std::vector<std::string>&)>& keys) noexcept
{
    if (cluster_)
        return cluster_->scan(pattern, keys);
    try {
        std::vector<std::string> batch;
        std::string cursor = "0";
        do {
            redisContext* c = ensure();
            const int step = c ? RedisEndpoint::scan_step(c, pattern, cursor, batch) : 0;
            if (step <= 0) {
                if (step < 0)
                    drop("SCAN");
                return false;
            }
            if (!batch.empty())
                keys(batch);
        } while (cursor != "0");
    } catch (const std::bad_alloc&) {
        return false;
    }
    return true;
}

} // namespace faultline
