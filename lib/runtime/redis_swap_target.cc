#include "runtime/redis_swap_target.h"

#include "runtime/protected_page_copy.h"
#include "runtime/redis_cluster_client.h"
#include "runtime/redis_namespace.h"

#include "support/try.h"

#include "support/log.h"
#include "support/runtime_thread.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <unistd.h>
#include <csignal>
#include <unordered_map>
#include <utility>
#include <vector>

namespace faultline {

namespace {

struct ReplyFree {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

Reply command(redisContext* c, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    void* r = redisvCommand(c, fmt, ap);
    va_end(ap);
    return Reply(static_cast<redisReply*>(r));
}

} // namespace

Result<std::unique_ptr<RedisSwapTarget>> RedisSwapTarget::create(const std::string& url, size_t page_size)
{
    RedisEndpoint endpoint = TRY(RedisEndpoint::parse(url));
    const std::string host_name = RedisNamespace::host();
    const char* host = host_name.c_str();
    const std::string prefix = RedisNamespace::fresh_prefix(host_name);
    std::unique_ptr<RedisSwapTarget> target(new RedisSwapTarget(std::move(endpoint), page_size, prefix));
    // Both connections now: an unreachable server or a refused password
    // fails the runtime's creation, not the first eviction.
    target->reader_.ctx = TRY(target->connect());
    target->writer_.ctx = TRY(target->connect());
    // A cluster node answers CLUSTER SLOTS with its map; a server without
    // cluster support refuses it, and is used as one node, as ever.
    Reply slots = command(target->reader_.ctx, "CLUSTER SLOTS");
    if (!slots)
        return failf(EIO, "Redis at %s:%d: no answer to CLUSTER SLOTS: %s", target->endpoint_.host.c_str(),
            target->endpoint_.port, target->reader_.ctx->errstr);
    if (slots->type == REDIS_REPLY_ARRAY) {
        // The two seed connections become the clients' first.
        target->cluster_reader_ = std::make_unique<RedisClusterClient>(target->endpoint_, "reads");
        target->cluster_writer_ = std::make_unique<RedisClusterClient>(target->endpoint_, "writes");
        redisContext* r = std::exchange(target->reader_.ctx, nullptr);
        redisContext* w = std::exchange(target->writer_.ctx, nullptr);
        auto started = target->cluster_reader_->start(r, slots.get());
        auto started_w = target->cluster_writer_->start(w, slots.get());
        TRY(std::move(started));
        TRY(std::move(started_w));
        target->cluster_sweep_dead(host);
    } else {
        target->sweep_dead(host);
    }
    // It answers faults: like the handler threads, it runs no application
    // signal handler.
    target->thread_ = TRY(start_runtime_thread("Redis swap", [t = target.get()] { t->run(); }));
    if (const auto& c = target->cluster_reader_)
        log::info("swap: Redis Cluster via {}:{} ({} masters{}), keys {}<slot>", target->endpoint_.host,
            target->endpoint_.port, c->map().masters().size(),
            c->durable() ? ", writes wait for a replica" : ", no replicas", target->prefix_);
    else
        log::info("swap: Redis at {}:{}, keys {}<slot>", target->endpoint_.host, target->endpoint_.port,
            target->prefix_);
    return target;
}

RedisSwapTarget::RedisSwapTarget(RedisEndpoint endpoint, size_t page_size, std::string prefix)
    : endpoint_(std::move(endpoint))
    , page_(page_size)
    , prefix_(std::move(prefix))
    , staging_(new char[page_size])
    , reads_(new ReadRequest[kReadCapacity])
    , releases_(new uint32_t[kReleaseCapacity])
    , owner_(getpid())
{
}

RedisSwapTarget::~RedisSwapTarget()
{
    if (getpid() != owner_) {
        // A fork child (the prepare handler read every swapped page back
        // first: it needs nothing from here). The thread and the keys are
        // the parent's: the thread object is left alone (it names no thread
        // here), the connections only closed (redisFree sends nothing).
        new (std::nothrow) std::thread(std::move(thread_));
        for (Link* l : { &reader_, &writer_ })
            if (l->ctx)
                redisFree(l->ctx);
        return;
    }
    // Without a thread, create() failed: nothing was written, and a second
    // try at a server that just refused would only log the refusal again.
    const bool used = thread_.joinable();
    {
        std::lock_guard g(lock_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (used)
        thread_.join();
    // Nothing of this runtime is read again: its namespace goes, whatever
    // releases were dropped or never sent.
    std::lock_guard g(release_lock_);
    if (used)
        delete_namespace();
    for (Link* l : { &reader_, &writer_ })
        if (l->ctx)
            redisFree(l->ctx);
}

Result<redisContext*> RedisSwapTarget::connect() const
{
    return endpoint_.connect(endpoint_.host, endpoint_.port);
}

redisContext* RedisSwapTarget::ensure(Link& link) noexcept
{
    if (link.ctx)
        return link.ctx;
    const auto now = std::chrono::steady_clock::now();
    if (now < link.retry_at)
        return nullptr;
    auto c = connect();
    if (c) {
        log::info("swap: reconnected to Redis at {}:{}", endpoint_.host, endpoint_.port);
        link.ctx = *c;
        link.backoff = std::chrono::milliseconds(0);
        return link.ctx;
    }
    if (link.backoff.count() == 0)
        log::error("swap: {} (retrying with backoff)", c.error().message());
    link.backoff = std::clamp(link.backoff * 2, std::chrono::milliseconds(50), kMaxBackoff);
    link.retry_at = now + link.backoff;
    return nullptr;
}

void RedisSwapTarget::drop(Link& link, const char* why) noexcept
{
    if (!link.ctx)
        return;
    log::error("swap: lost the Redis connection to {}:{} ({}): {}", endpoint_.host, endpoint_.port, why,
        link.ctx->errstr);
    redisFree(link.ctx);
    link.ctx = nullptr;
    // The first try is immediate (a restarted server is back at once); a
    // failed one starts the backoff in ensure().
    link.retry_at = {};
}

size_t RedisSwapTarget::key(char* out, uint32_t slot) const noexcept
{
    const int n = snprintf(out, 600, "%s%u", prefix_.c_str(), slot);
    return size_t(n);
}

bool RedisSwapTarget::read(uint32_t slot, void* buffer, io::Operation* op, memory::IoPort*) noexcept
{
    {
        std::lock_guard g(lock_);
        if (read_count_ == kReadCapacity || stopping_)
            return false;
        reads_[(read_head_ + read_count_++) % kReadCapacity] = { slot, buffer, op };
    }
    wake_.notify_one();
    return true;
}

void RedisSwapTarget::release(uint32_t slot) noexcept
{
    {
        std::lock_guard g(lock_);
        if (release_count_ == kReleaseCapacity) {
            ++releases_dropped_;
            return;
        }
        releases_[(release_head_ + release_count_++) % kReleaseCapacity] = slot;
    }
    wake_.notify_one();
}

void RedisSwapTarget::run() noexcept
{
    // Marked as the runtime's: hiredis allocates, and under the preloaded
    // heap an allocation from the heap this thread serves could wait for itself.
    begin_runtime_thread("faultline-redis");
    ReadRequest batch[kPipeline];
    bool releases_busy = false; // write() held release_lock_: it sends them
    for (;;) {
        size_t n = 0;
        {
            std::unique_lock g(lock_);
            auto ready = [&] { return stopping_ || read_count_ > 0 || (release_count_ > 0 && !releases_busy); };
            if (releases_busy)
                wake_.wait_for(g, std::chrono::milliseconds(2), ready);
            else
                wake_.wait(g, ready);
            if (stopping_ && read_count_ == 0)
                return;
            for (; n < kPipeline && read_count_ > 0; ++n, --read_count_) {
                batch[n] = reads_[read_head_];
                read_head_ = (read_head_ + 1) % kReadCapacity;
            }
        }
        if (n > 0)
            serve_reads(batch, n);
        releases_busy = !release_lock_.try_lock();
        if (!releases_busy) {
            unlink_released(reader_);
            release_lock_.unlock();
        }
    }
}

int32_t RedisSwapTarget::read_result(const redisReply* r, const ReadRequest& q) const noexcept
{
    if (r->type == REDIS_REPLY_STRING && size_t(r->len) == page_) {
        memcpy(q.buffer, r->str, page_);
        return int32_t(page_);
    }
    // The pager wrote this slot and never freed it: a missing value
    // (evicted by maxmemory, flushed) or one of another size is data lost,
    // answered SIGBUS.
    if (r->type == REDIS_REPLY_STRING)
        log::error("swap: Redis key {}{} holds {} bytes, not a page: corrupt", prefix_, q.slot, r->len);
    else if (r->type == REDIS_REPLY_NIL)
        log::error("swap: Redis key {}{} is missing (evicted or flushed by the server?)", prefix_, q.slot);
    else
        log::error("swap: Redis GET {}{} failed: {}", prefix_, q.slot,
            r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : std::string("unexpected reply"));
    return -EIO;
}

void RedisSwapTarget::serve_reads(ReadRequest* batch, size_t n) noexcept
{
    if (cluster_reader_)
        return cluster_serve_reads(batch, n);
    redisContext* c = ensure(reader_);
    size_t done = 0;
    if (c) {
        char k[600];
        size_t queued = 0;
        for (; queued < n; ++queued) {
            const size_t len = key(k, batch[queued].slot);
            if (redisAppendCommand(c, "GET %b", k, len) != REDIS_OK)
                break;
        }
        for (; done < queued; ++done) {
            void* raw = nullptr;
            if (redisGetReply(c, &raw) != REDIS_OK) {
                drop(reader_, "read");
                break;
            }
            Reply r(static_cast<redisReply*>(raw));
            ReadRequest& q = batch[done];
            q.op->complete(q.op, read_result(r.get(), q));
        }
        // Appended but unanswered (a broken pipeline): the connection was dropped.
        if (done < n && reader_.ctx && done == queued)
            drop(reader_, "pipeline");
    }
    // No connection: fail now rather than wait for one — a fault is never
    // held hostage to an outage.
    for (; done < n; ++done)
        batch[done].op->complete(batch[done].op, c ? -EIO : -ENOTCONN);
}

void RedisSwapTarget::unlink_released(Link& link) noexcept
{
    constexpr size_t kMax = 512;
    for (;;) {
        uint32_t slots[kMax];
        size_t n = 0;
        {
            std::lock_guard g(lock_);
            for (; n < kMax && release_count_ > 0; ++n, --release_count_) {
                slots[n] = releases_[release_head_];
                release_head_ = (release_head_ + 1) % kReleaseCapacity;
            }
        }
        if (n == 0)
            return;
        if (RedisClusterClient* client = &link == &reader_ ? cluster_reader_.get() : cluster_writer_.get()) {
            try {
                cluster_unlink(*client, slots, n);
            } catch (const std::bad_alloc&) {
                std::lock_guard g(lock_);
                releases_dropped_ += n;
            }
            continue;
        }
        redisContext* c = ensure(link);
        if (!c) {
            // The keys stay; a reused slot's SET overwrites its key and the
            // namespace is deleted when the target goes.
            std::lock_guard g(lock_);
            releases_dropped_ += n;
            continue;
        }
        try {
            std::vector<std::string> keys(n + 1);
            std::vector<const char*> argv(n + 1);
            std::vector<size_t> argl(n + 1);
            keys[0] = "UNLINK";
            for (size_t i = 0; i < n; ++i)
                keys[i + 1] = prefix_ + std::to_string(slots[i]);
            for (size_t i = 0; i <= n; ++i) {
                argv[i] = keys[i].data();
                argl[i] = keys[i].size();
            }
            Reply r(static_cast<redisReply*>(redisCommandArgv(c, int(n + 1), argv.data(), argl.data())));
            if (!r)
                drop(link, "unlink");
        } catch (const std::bad_alloc&) {
            std::lock_guard g(lock_);
            releases_dropped_ += n;
        }
    }
}

void RedisSwapTarget::write(Write* writes, size_t count) noexcept
{
    std::lock_guard g(release_lock_);
    // Before the SETs, on this connection: a slot freed and reused since
    // must lose its old key before it gets the new one, not after.
    unlink_released(writer_);
    if (cluster_writer_)
        return cluster_write(writes, count);
    redisContext* c = ensure(writer_);
    size_t answered = 0;
    if (c) {
        char k[600];
        size_t queued = 0;
        // Pages that could not be read (being unmapped): a PING holds their
        // place in the pipeline, and their write fails.
        std::vector<uint8_t> unreadable(count, 0);
        for (; queued < count; ++queued) {
            const size_t len = key(k, writes[queued].slot);
            // hiredis formats the command into its buffer at once: one
            // staging page serves the whole batch.
            const bool read = copy_protected_page(staging_.get(), static_cast<const char*>(writes[queued].data), page_);
            unreadable[queued] = !read;
            if ((read ? redisAppendCommand(c, "SET %b %b", k, len, staging_.get(), page_) : redisAppendCommand(c, "PING")) != REDIS_OK)
                break;
        }
        bool logged = false;
        for (; answered < queued; ++answered) {
            void* raw = nullptr;
            if (redisGetReply(c, &raw) != REDIS_OK) {
                drop(writer_, "write");
                break;
            }
            Reply r(static_cast<redisReply*>(raw));
            Write& w = writes[answered];
            if (unreadable[answered]) {
                w.result = -EFAULT;
            } else if (r->type == REDIS_REPLY_ERROR) {
                // maxmemory reached (noeviction): the swap is full, not broken.
                const bool oom = r->len >= 3 && !memcmp(r->str, "OOM", 3);
                w.result = oom ? -ENOSPC : -EIO;
                if (!logged)
                    log::warn("swap: Redis refused a SET: {}", std::string(r->str, r->len));
                logged = true;
            } else {
                w.result = 0;
            }
        }
        if (answered < count && writer_.ctx)
            drop(writer_, "pipeline");
    }
    // Not written: the pager keeps these pages resident.
    for (; answered < count; ++answered)
        writes[answered].result = c ? -EIO : -ENOTCONN;
}

void RedisSwapTarget::sweep_dead(const char* host) noexcept
{
    redisContext* c = reader_.ctx;
    try {
        // faultline:<host>:<pid>:... — only this host's: a pid means
        // nothing elsewhere.
        const std::string match = std::string("faultline:") + host + ":*";
        const size_t pid_at = match.size() - 1;
        std::unordered_map<long, bool> dead;
        size_t swept = 0;
        std::string cursor = "0";
        do {
            Reply r = command(c, "SCAN %s MATCH %b COUNT 1000", cursor.c_str(), match.data(), match.size());
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
                break;
            cursor.assign(r->element[0]->str, r->element[0]->len);
            const redisReply* keys = r->element[1];
            std::vector<const char*> argv { "UNLINK" };
            std::vector<size_t> argl { 6 };
            for (size_t i = 0; i < keys->elements; ++i) {
                const std::string_view k(keys->element[i]->str, keys->element[i]->len);
                if (RedisNamespace::is_dead(k, pid_at, dead)) {
                    argv.push_back(k.data());
                    argl.push_back(k.size());
                }
            }
            if (argv.size() > 1) {
                Reply u(static_cast<redisReply*>(redisCommandArgv(c, int(argv.size()), argv.data(), argl.data())));
                if (!u)
                    break;
                swept += argv.size() - 1;
            }
        } while (cursor != "0");
        if (swept)
            log::info("swap: deleted {} Redis keys of dead faultline processes on {}", swept, host);
    } catch (const std::bad_alloc&) {
    }
}

void RedisSwapTarget::delete_namespace() noexcept
{
    if (cluster_writer_)
        return cluster_delete_namespace();
    writer_.retry_at = {};
    redisContext* c = ensure(writer_);
    if (!c)
        return;
    try {
        std::string cursor = "0";
        const std::string match = prefix_ + "*";
        do {
            Reply r = command(c, "SCAN %s MATCH %b COUNT 1000", cursor.c_str(), match.data(), match.size());
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
                return;
            cursor.assign(r->element[0]->str, r->element[0]->len);
            const redisReply* keys = r->element[1];
            if (keys->elements == 0)
                continue;
            std::vector<const char*> argv { "UNLINK" };
            std::vector<size_t> argl { 6 };
            for (size_t i = 0; i < keys->elements; ++i) {
                argv.push_back(keys->element[i]->str);
                argl.push_back(keys->element[i]->len);
            }
            Reply u(static_cast<redisReply*>(redisCommandArgv(c, int(argv.size()), argv.data(), argl.data())));
            if (!u)
                return;
        } while (cursor != "0");
    } catch (const std::bad_alloc&) {
    }
}

// On a cluster, the same work through the thread's RedisClusterClient: a
// batch of single-key commands, routed by each key's slot.

void RedisSwapTarget::cluster_serve_reads(ReadRequest* batch, size_t n) noexcept
{
    // This thread may allocate (handler threads never come here): the keys
    // and the client's bookkeeping are built per batch.
    try {
        std::vector<std::string> keys(n);
        std::vector<RedisClusterClient::Op> ops(n);
        for (size_t i = 0; i < n; ++i) {
            keys[i] = prefix_ + std::to_string(batch[i].slot);
            ops[i] = { RedisClusterClient::Kind::Get, keys[i].data(), keys[i].size() };
        }
        cluster_reader_->execute(ops.data(), n);
        bool logged = false;
        for (size_t i = 0; i < n; ++i) {
            Reply r(ops[i].reply);
            // No node could answer within the client's bounded retries:
            // an error now (SIGBUS), never a wait for the cluster. One line
            // per batch: an outage fails every read of it the same way.
            const int32_t result = ops[i].error ? ops[i].error : read_result(r.get(), batch[i]);
            if (ops[i].error && !logged)
                log::error("swap: Redis Cluster GET {}{} failed: {}", prefix_, batch[i].slot, strerror(-ops[i].error));
            logged |= ops[i].error != 0;
            batch[i].op->complete(batch[i].op, result);
        }
    } catch (const std::bad_alloc&) {
        for (size_t i = 0; i < n; ++i)
            batch[i].op->complete(batch[i].op, -ENOMEM);
    }
}

void RedisSwapTarget::cluster_write(Write* writes, size_t count) noexcept
{
    try {
        // Every page copied first, at once, as on one node: a SET may be
        // sent again (a redirect, a failover) well after the evictor's
        // write-protection was the only thing keeping the page as it was,
        // and an unmap meanwhile would take the page away under the copy.
        std::unique_ptr<char[]> pages(new char[count * page_]);
        std::vector<std::string> keys(count);
        std::vector<RedisClusterClient::Op> ops(count);
        // Pages that could not be read (being unmapped) are not sent.
        size_t n = 0;
        std::vector<size_t> index(count);
        for (size_t i = 0; i < count; ++i) {
            char* copy = pages.get() + n * page_;
            if (!copy_protected_page(copy, static_cast<const char*>(writes[i].data), page_)) {
                writes[i].result = -EFAULT;
                continue;
            }
            keys[n] = prefix_ + std::to_string(writes[i].slot);
            ops[n] = { RedisClusterClient::Kind::Set, keys[n].data(), keys[n].size(), copy, page_ };
            index[n++] = i;
        }
        if (n)
            cluster_writer_->execute(ops.data(), n);
        // A failed one (no node, OOM, no replica acknowledged it): the
        // pager keeps the page resident.
        for (size_t j = 0; j < n; ++j)
            writes[index[j]].result = ops[j].error;
    } catch (const std::bad_alloc&) {
        for (size_t i = 0; i < count; ++i)
            writes[i].result = -ENOMEM;
    }
}

void RedisSwapTarget::cluster_unlink(RedisClusterClient& client, const uint32_t* slots, size_t n)
{
    // One UNLINK per key: a multi-key UNLINK must name keys of one slot
    // (CROSSSLOT otherwise), and ours spread over all of them.
    std::vector<std::string> keys(n);
    std::vector<RedisClusterClient::Op> ops(n);
    for (size_t i = 0; i < n; ++i) {
        keys[i] = prefix_ + std::to_string(slots[i]);
        ops[i] = { RedisClusterClient::Kind::Unlink, keys[i].data(), keys[i].size() };
    }
    client.execute(ops.data(), n);
    size_t failed = 0;
    for (size_t i = 0; i < n; ++i)
        failed += ops[i].error != 0;
    if (failed) {
        // As on one node: the keys stay until rewritten or the namespace goes.
        std::lock_guard g(lock_);
        releases_dropped_ += failed;
    }
}

void RedisSwapTarget::cluster_delete_namespace() noexcept
{
    RedisClusterClient& client = *cluster_writer_;
    (void)client.scan(prefix_ + "*", [&](std::vector<std::string>& keys) {
        std::vector<RedisClusterClient::Op> ops(keys.size());
        for (size_t i = 0; i < keys.size(); ++i)
            ops[i] = { RedisClusterClient::Kind::Unlink, keys[i].data(), keys[i].size() };
        client.execute(ops.data(), ops.size());
    });
}

void RedisSwapTarget::cluster_sweep_dead(const char* host) noexcept
{
    RedisClusterClient& client = *cluster_reader_;
    size_t swept = 0;
    try {
        const std::string match = std::string("faultline:") + host + ":*";
        const size_t pid_at = match.size() - 1;
        std::unordered_map<long, bool> dead;
        // Every master's keyspace: each holds the keys of its slots.
        (void)client.scan(match, [&](std::vector<std::string>& keys) {
            std::vector<RedisClusterClient::Op> ops;
            for (const auto& k : keys)
                if (RedisNamespace::is_dead(k, pid_at, dead))
                    ops.push_back({ RedisClusterClient::Kind::Unlink, k.data(), k.size() });
            client.execute(ops.data(), ops.size());
            for (const auto& op : ops)
                swept += op.error == 0;
        });
    } catch (const std::bad_alloc&) {
    }
    if (swept)
        log::info("swap: deleted {} Redis keys of dead faultline processes on {}", swept, host);
}

} // namespace faultline
