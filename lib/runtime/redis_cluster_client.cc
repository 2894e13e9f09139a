#include "runtime/redis_cluster_client.h"

#include "support/log.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>
#include <thread>

namespace faultline {

namespace {

struct ReplyFree {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

Reply next_reply(redisContext* c) noexcept
{
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK)
        return nullptr;
    return Reply(static_cast<redisReply*>(raw));
}

bool starts_with(const redisReply* r, std::string_view what) noexcept
{
    return r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).starts_with(what);
}

} // namespace

RedisClusterClient::RedisClusterClient(const RedisEndpoint& seed, const char* role)
    : seed_(seed)
    , role_(role)
{
}

RedisClusterClient::~RedisClusterClient()
{
    for (Link& l : links_)
        if (l.ctx)
            redisFree(l.ctx);
}

Result<void> RedisClusterClient::start(redisContext* seed, const redisReply* slots)
{
    const uint16_t node = map_.node(seed_.host, seed_.port);
    links_.resize(map_.nodes());
    links_[node].ctx = seed;
    if (!map_.load(slots, map_.address(node)))
        return failf(EPROTO, "Redis at %s:%d: CLUSTER SLOTS gave no usable slot map (a cluster not set up yet?)",
            seed_.host.c_str(), seed_.port);
    links_.resize(map_.nodes());
    // CLUSTER SLOTS lists a replica only once its replication offset has
    // been gossiped (up to the master's replica ping period, 10 s by
    // default, on an idle new cluster), and CLUSTER NODES only once the
    // replica's own pings told this node its role; a master knows its
    // replicas at once. Any of the three, and writes wait for a replica
    // for good.
    durable_ = map_.has_replicas();
    for (uint16_t m : map_.masters()) {
        if (durable_)
            break;
        redisContext* c = ensure(m);
        Reply info(c ? static_cast<redisReply*>(redisCommand(c, "INFO replication")) : nullptr);
        if (!info && c)
            drop(m, "INFO");
        if (info && info->type == REDIS_REPLY_STRING) {
            const std::string_view text(info->str, info->len);
            const auto at = text.find("connected_slaves:");
            durable_ = at != text.npos && text.size() > at + 17 && text[at + 17] >= '1' && text[at + 17] <= '9';
        }
    }
    if (!durable_) {
        Reply nodes(static_cast<redisReply*>(redisCommand(seed, "CLUSTER NODES")));
        if (nodes && nodes->type == REDIS_REPLY_STRING) {
            // Each line: <id> <address> <flags> <master id> ...; a
            // replica's flags include "slave".
            std::string_view text(nodes->str, nodes->len);
            while (!text.empty() && !durable_) {
                const auto eol = text.find('\n');
                std::string_view line = text.substr(0, eol);
                text = eol == text.npos ? std::string_view() : text.substr(eol + 1);
                for (int field = 0; field < 2 && !line.empty(); ++field)
                    line = line.substr(std::min(line.size(), line.find(' ') + 1));
                const std::string_view flags = line.substr(0, line.find(' '));
                durable_ = flags.find("slave") != flags.npos;
            }
        }
    }
    return {};
}

redisContext* RedisClusterClient::ensure(uint16_t node) noexcept
{
    if (links_.size() < map_.nodes())
        links_.resize(map_.nodes());
    Link& link = links_[node];
    if (link.ctx)
        return link.ctx;
    const auto now = std::chrono::steady_clock::now();
    if (now < link.retry_at)
        return nullptr;
    const auto& a = map_.address(node);
    auto c = seed_.connect(a.host, a.port);
    if (c) {
        if (link.backoff.count() > 0)
            log::info("swap: reconnected to Redis at {}:{} ({})", a.host, a.port, role_);
        link.ctx = *c;
        link.backoff = std::chrono::milliseconds(0);
        return link.ctx;
    }
    if (link.backoff.count() == 0)
        log::error("swap: {} ({}, retrying with backoff)", c.error().message(), role_);
    link.backoff = std::clamp(link.backoff * 2, std::chrono::milliseconds(50), kMaxBackoff);
    link.retry_at = now + link.backoff;
    return nullptr;
}

void RedisClusterClient::drop(uint16_t node, const char* why) noexcept
{
    Link& link = links_[node];
    if (!link.ctx)
        return;
    const auto& a = map_.address(node);
    log::error("swap: lost the Redis connection to {}:{} ({}, {}): {}", a.host, a.port, role_, why, link.ctx->errstr);
    redisFree(link.ctx);
    link.ctx = nullptr;
    // The first try is immediate (a restarted node is back at once); a
    // failed one starts the backoff in ensure(). The backoff it had stays
    // as the doubling's start, so a node that keeps dying is not hammered.
    link.retry_at = {};
    link.backoff = std::max(link.backoff, std::chrono::milliseconds(1));
}

bool RedisClusterClient::refresh() noexcept
{
    try {
        // Two passes: a node already connected answers at once; then the
        // others, each at most one connect (a dead one is skipped for its
        // backoff), the URL's node among them — any node knows the map.
        for (int pass = 0; pass < 2; ++pass) {
            for (uint16_t n = 0; n < map_.nodes(); ++n) {
                if (n >= links_.size())
                    links_.resize(map_.nodes());
                if ((pass == 0) != (links_[n].ctx != nullptr))
                    continue;
                redisContext* c = ensure(n);
                if (!c)
                    continue;
                Reply r(static_cast<redisReply*>(redisCommand(c, "CLUSTER SLOTS")));
                if (!r) {
                    drop(n, "CLUSTER SLOTS");
                    continue;
                }
                // A copy: load() may add nodes, and the address lives in them.
                const RedisClusterMap::Address from = map_.address(n);
                if (map_.load(r.get(), from)) {
                    links_.resize(map_.nodes());
                    durable_ |= map_.has_replicas();
                    return true;
                }
            }
        }
    } catch (const std::bad_alloc&) {
    }
    return false;
}

void RedisClusterClient::execute(Op* ops, size_t count) noexcept
{
    try {
        slot_.resize(count);
        ask_.assign(count, RedisClusterMap::kNone);
        target_.resize(count);
        std::vector<size_t> pending(count), retry, group;
        for (size_t i = 0; i < count; ++i) {
            pending[i] = i;
            ops[i].reply = nullptr;
            ops[i].error = -EIO;
            slot_[i] = RedisClusterMap::key_slot(std::string_view(ops[i].key, ops[i].key_len));
        }
        bool reload = false;
        for (int attempt = 0; attempt < kAttempts && !pending.empty(); ++attempt) {
            if (attempt > 0) {
                if (reload)
                    refresh();
                // A failover or a migration takes a moment: wait a little
                // longer each round (10 ms ... 160 ms, about 0.3 s in all).
                // A redirect alone is followed at once.
                if (stalled_)
                    std::this_thread::sleep_for(std::chrono::milliseconds(10 << (attempt - 1)));
            }
            reload = false;
            stalled_ = false;
            for (size_t i : pending)
                target_[i] = ask_[i] != RedisClusterMap::kNone ? ask_[i] : map_.master_of(slot_[i]);
            retry.clear();
            // One pipeline per node, in the order the nodes first appear.
            while (!pending.empty()) {
                const uint16_t node = target_[pending.front()];
                group.clear();
                size_t kept = 0;
                for (size_t i : pending) {
                    if (target_[i] == node)
                        group.push_back(i);
                    else
                        pending[kept++] = i;
                }
                pending.resize(kept);
                if (node == RedisClusterMap::kNone) {
                    // A slot no master serves: a map from mid-failover.
                    for (size_t i : group)
                        ops[i].error = -ENOTCONN, retry.push_back(i);
                    reload = stalled_ = true;
                    continue;
                }
                run_pipeline(node, ops, group, retry, reload);
            }
            pending.swap(retry);
        }
        // Still not done after every round: the errors stay (-EIO, -ENOTCONN).
        for (size_t i : pending)
            if (ops[i].reply) {
                freeReplyObject(ops[i].reply);
                ops[i].reply = nullptr;
            }
    } catch (const std::bad_alloc&) {
        for (size_t i = 0; i < count; ++i)
            if (!ops[i].reply)
                ops[i].error = -ENOMEM;
    }
}

void RedisClusterClient::run_pipeline(uint16_t node, Op* ops, const std::vector<size_t>& group,
    std::vector<size_t>& retry, bool& reload) noexcept
{
    bool sets = false;
    for (size_t i : group)
        sets |= ops[i].kind == Kind::Set;
    const bool wait = sets && durable_;
    if (no_replica_until_.size() < map_.nodes())
        no_replica_until_.resize(map_.nodes());
    if (wait && std::chrono::steady_clock::now() < no_replica_until_[node]) {
        // This master's last WAIT found no replica (its replica was
        // promoted, or is down): a SET there would be the only copy, so
        // none is sent for a while and the pages stay resident — without
        // making the evictor wait a whole WAIT timeout for each batch.
        std::vector<size_t> rest;
        for (size_t i : group)
            if (ops[i].kind == Kind::Set)
                ops[i].error = -EIO;
            else
                rest.push_back(i);
        if (!rest.empty())
            run_pipeline(node, ops, rest, retry, reload);
        return;
    }
    redisContext* c = ensure(node);
    if (!c) {
        for (size_t i : group)
            ops[i].error = -ENOTCONN, retry.push_back(i);
        reload = stalled_ = true;
        return;
    }
    bool appended = true;
    for (size_t i : group) {
        const Op& op = ops[i];
        if (ask_[i] != RedisClusterMap::kNone)
            appended &= redisAppendCommand(c, "ASKING") == REDIS_OK;
        switch (op.kind) {
        case Kind::Get:
            appended &= redisAppendCommand(c, "GET %b", op.key, op.key_len) == REDIS_OK;
            break;
        case Kind::Set:
            appended &= redisAppendCommand(c, "SET %b %b", op.key, op.key_len, op.value, op.value_len) == REDIS_OK;
            break;
        case Kind::Unlink:
            appended &= redisAppendCommand(c, "UNLINK %b", op.key, op.key_len) == REDIS_OK;
            break;
        }
    }
    // What WAIT costs: one more reply on the same round trip, plus the time
    // the replica takes to acknowledge (a fraction of the command timeout
    // at most, so the socket's own timeout never fires first).
    const unsigned wait_ms = std::max(1u, seed_.command_timeout_ms / 2);
    if (wait)
        appended &= redisAppendCommand(c, "WAIT 1 %u", wait_ms) == REDIS_OK;
    if (!appended) {
        // Out of memory in hiredis' buffer: the connection's state is
        // unknown, so it goes.
        drop(node, "append");
        for (size_t i : group)
            retry.push_back(i);
        stalled_ = true;
        return;
    }
    std::vector<size_t> stored; // SETs answered OK, waiting for WAIT
    size_t at = 0;
    for (; at < group.size(); ++at) {
        const size_t i = group[at];
        Op& op = ops[i];
        if (ask_[i] != RedisClusterMap::kNone && !next_reply(c))
            break;
        Reply r = next_reply(c);
        if (!r)
            break;
        const bool asked = ask_[i] != RedisClusterMap::kNone;
        ask_[i] = RedisClusterMap::kNone;
        if (r->type != REDIS_REPLY_ERROR) {
            op.error = 0;
            if (op.kind == Kind::Get)
                op.reply = r.release();
            else if (op.kind == Kind::Set)
                stored.push_back(i);
            continue;
        }
        const std::string_view text(r->str, r->len);
        if (auto redirect = RedisClusterMap::parse_redirect(text)) {
            const uint16_t to = map_.node(redirect->host.empty() ? std::string_view(map_.address(node).host)
                                                                 : redirect->host,
                redirect->port);
            if (redirect->kind == RedisClusterMap::Redirect::Moved) {
                // The slot has moved for good: remember it now, and reload
                // the whole map before the next round (its neighbours have
                // likely moved too).
                map_.set_master(redirect->slot, to);
                reload = true;
            } else if (!asked) {
                // Only this key, only this once: the map stays.
                ask_[i] = to;
            }
            retry.push_back(i);
        } else if (starts_with(r.get(), "CLUSTERDOWN") || starts_with(r.get(), "TRYAGAIN")
            || starts_with(r.get(), "LOADING") || starts_with(r.get(), "MASTERDOWN")) {
            // A failover or a migration under way: again, after a reload.
            reload = stalled_ = true;
            retry.push_back(i);
        } else {
            // maxmemory reached (noeviction): the swap is full, not broken.
            op.error = starts_with(r.get(), "OOM") ? -ENOSPC : -EIO;
            log::warn("swap: Redis at {}:{} refused a command: {}", map_.address(node).host, map_.address(node).port,
                text);
        }
    }
    if (at < group.size()) {
        drop(node, "pipeline");
        // Unanswered (the node died or stalled): a reload finds who serves
        // these slots now. A SET answered OK but never confirmed by WAIT is
        // sent again (SET is idempotent).
        for (; at < group.size(); ++at)
            ops[group[at]].error = -ENOTCONN, retry.push_back(group[at]);
        for (size_t i : stored)
            ops[i].error = -ENOTCONN, retry.push_back(i);
        reload = stalled_ = true;
        return;
    }
    if (!wait)
        return;
    Reply w = next_reply(c);
    if (!w) {
        drop(node, "WAIT");
        for (size_t i : stored)
            ops[i].error = -ENOTCONN, retry.push_back(i);
        reload = stalled_ = true;
        return;
    }
    if (w->type == REDIS_REPLY_INTEGER && w->integer >= 1) {
        wait_logged_ = false;
        return;
    }
    no_replica_until_[node] = std::chrono::steady_clock::now() + kReplicaRecheck;
    // No replica has these pages within the wait: failed writes, so the
    // pages stay resident — a master lost now would lose them.
    if (!wait_logged_)
        log::warn("swap: no Redis replica of {}:{} acknowledged a write within {} ms: pages stay resident",
            map_.address(node).host, map_.address(node).port, wait_ms);
    wait_logged_ = true;
    for (size_t i : stored)
        ops[i].error = -EIO;
}

bool RedisClusterClient::scan(const std::string& pattern,
    const std::function<void(std::vector<std::string>&)>& keys) noexcept
{
    bool complete = true;
    try {
        std::vector<std::string> batch;
        for (uint16_t m : map_.masters()) {
            std::string cursor = "0";
            int failures = 0;
            do {
                // Asked again each time: keys() may have run execute(),
                // which can drop and remake connections.
                redisContext* c = ensure(m);
                const int step = c ? RedisEndpoint::scan_step(c, pattern, cursor, batch) : 0;
                if (step <= 0) {
                    if (step < 0)
                        drop(m, "SCAN");
                    if (++failures == 3) {
                        complete = false;
                        break;
                    }
                    continue;
                }
                if (!batch.empty())
                    keys(batch);
            } while (cursor != "0");
        }
    } catch (const std::bad_alloc&) {
        return false;
    }
    return complete;
}

} // namespace faultline
