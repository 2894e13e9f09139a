// RedisStore (faultline/redis_store.h): the public Store over the Redis
// page clients of the runtime layer (runtime/redis_page_client.h).
#include <faultline/redis_store.h>

#include "runtime/redis_endpoint.h"
#include "runtime/redis_namespace.h"
#include "runtime/redis_page_client.h"
#include "support/log.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <unistd.h>
#include <vector>

namespace faultline {

namespace {

// Connections of one store: its read threads (2 by default), a writer
// (sync, unmap, the evictor) and one spare. A call beyond waits for one to
// be free — on a store thread or a syncing thread, never a fault handler.
constexpr size_t kClients = 4;
// Pages per pipeline: a long sync is sent in rounds of this many SETs, so
// that one round's values (and replies) stay a bounded amount of memory.
constexpr size_t kPipeline = 256;

bool valid_name(const std::string& name)
{
    return name.size() <= 64
        && std::all_of(name.begin(), name.end(), [](char c) { return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-'; });
}

} // namespace

struct RedisStore::Impl {
    RedisEndpoint endpoint;
    uint64_t size = 0;
    size_t page = 0;
    std::string prefix;
    pid_t owner = getpid();
    // From the first connection: asked by callers while every client may
    // be leased.
    bool cluster = false;
    size_t masters = 0;

    std::mutex lock;
    std::condition_variable idle_changed;
    std::vector<std::unique_ptr<RedisPageClient>> idle;

    // A bit per page this store has written: a GET that finds no key is
    // zeros for a page never written, and data lost for one written (a
    // flushed or restarted server: SIGBUS, never silent zeros).
    std::unique_ptr<std::atomic<uint64_t>[]> written;

    // A client of the pool for one call, given back however the call ends
    // (a client lost to an exception would shrink the pool for good).
    class Lease {
    public:
        explicit Lease(Impl& s)
            : s_(s)
        {
            std::unique_lock g(s.lock);
            s.idle_changed.wait(g, [&] { return !s.idle.empty(); });
            c_ = std::move(s.idle.back());
            s.idle.pop_back();
        }
        ~Lease()
        {
            {
                std::lock_guard g(s_.lock);
                s_.idle.push_back(std::move(c_));
            }
            s_.idle_changed.notify_one();
        }
        RedisPageClient* operator->() const noexcept { return c_.get(); }

    private:
        Impl& s_;
        std::unique_ptr<RedisPageClient> c_;
    };
    bool was_written(uint64_t index) const noexcept
    {
        return written[index / 64].load(std::memory_order_acquire) & (uint64_t(1) << (index % 64));
    }
    void mark_written(uint64_t index, bool on) noexcept
    {
        const uint64_t bit = uint64_t(1) << (index % 64);
        if (on)
            written[index / 64].fetch_or(bit, std::memory_order_release);
        else
            written[index / 64].fetch_and(~bit, std::memory_order_release);
    }
    std::string key(uint64_t index) const { return prefix + std::to_string(index); }
    // A GET's reply into `out`: the page's size, or -EIO.
    int64_t take_value(const redisReply* r, uint64_t index, char* out) const noexcept;
    int unlink(uint64_t first, uint64_t count) noexcept;
};

RedisStore::RedisStore(std::unique_ptr<Impl> impl) noexcept
    : impl_(std::move(impl))
{
}

Result<std::shared_ptr<RedisStore>> RedisStore::create(const RedisStoreOptions& options)
{
    try {
        const size_t page = size_t(sysconf(_SC_PAGESIZE));
        if (options.size == 0 || options.size % page)
            return failf(EINVAL, "RedisStore: the size must be a positive multiple of the page size (%zu)", page);
        if (!valid_name(options.name))
            return fail(EINVAL, "RedisStore: the name must be at most 64 of [A-Za-z0-9_.-]");
        auto endpoint = RedisEndpoint::parse(options.url);
        if (!endpoint)
            return std::unexpected(endpoint.error());
        auto impl = std::make_unique<Impl>();
        impl->endpoint = std::move(*endpoint);
        impl->size = options.size;
        impl->page = page;
        const std::string host = RedisNamespace::host();
        impl->prefix = RedisNamespace::fresh_prefix(host) + "store:" + (options.name.empty() ? "store" : options.name) + ":";
        const uint64_t words = (options.size / page + 63) / 64;
        impl->written.reset(new (std::nothrow) std::atomic<uint64_t>[words] {});
        if (!impl->written)
            return fail(ENOMEM, "RedisStore: out of memory for the written-pages bitmap");
        // Every connection now: a wrong address or password fails here,
        // with its errno, not at the first fault.
        for (size_t i = 0; i < kClients; ++i) {
            auto c = RedisPageClient::connect(impl->endpoint, "store");
            if (!c)
                return std::unexpected(c.error());
            impl->idle.push_back(std::move(*c));
        }
        RedisPageClient& first = *impl->idle.front();
        impl->cluster = first.cluster();
        impl->masters = first.masters();
        if (size_t swept = RedisNamespace::sweep_dead(first, host))
            log::info("store: deleted {} Redis keys of dead faultline processes on {}", swept, host);
        log::info("store: Redis {} via {}:{} ({} master{}{}), keys {}<page>", first.cluster() ? "Cluster" : "server",
            impl->endpoint.host, impl->endpoint.port, first.masters(), first.masters() == 1 ? "" : "s",
            first.durable() ? ", writes wait for a replica" : "", impl->prefix);
        return std::shared_ptr<RedisStore>(new RedisStore(std::move(impl)));
    } catch (const std::bad_alloc&) {
        return fail(ENOMEM, "RedisStore: out of memory");
    }
}

RedisStore::~RedisStore()
{
    // A fork child's copy: the keys are the parent's.
    if (getpid() != impl_->owner || impl_->idle.empty())
        return;
    if (!RedisNamespace::delete_all(*impl_->idle.front(), impl_->prefix))
        log::warn("store: could not delete every key under {} (a node down?)", impl_->prefix);
}

uint64_t RedisStore::size() noexcept { return impl_->size; }

const std::string& RedisStore::key_prefix() const noexcept { return impl_->prefix; }

bool RedisStore::cluster() const noexcept { return impl_->cluster; }

size_t RedisStore::masters() const noexcept { return impl_->masters; }

int64_t RedisStore::Impl::take_value(const redisReply* r, uint64_t index, char* out) const noexcept
{
    if (r->type == REDIS_REPLY_STRING && size_t(r->len) == page) {
        memcpy(out, r->str, page);
        return int64_t(page);
    }
    if (r->type == REDIS_REPLY_NIL && !was_written(index)) {
        memset(out, 0, page); // never written: the store's zeros
        return int64_t(page);
    }
    if (r->type == REDIS_REPLY_STRING)
        log::error("store: Redis key {}{} holds {} bytes, not a page: corrupt", prefix, index, r->len);
    else if (r->type == REDIS_REPLY_NIL)
        log::error("store: Redis key {}{} is missing (flushed, evicted or a restarted server?)", prefix, index);
    else
        log::error("store: Redis GET {}{}: unexpected reply", prefix, index);
    return -EIO;
}

int64_t RedisStore::read(void* buffer, size_t bytes, uint64_t offset) noexcept
{
    Impl& s = *impl_;
    if (offset % s.page || bytes % s.page)
        return -EINVAL;
    if (offset >= s.size)
        return 0;
    bytes = size_t(std::min<uint64_t>(bytes, s.size - offset));
    try {
        const size_t pages = bytes / s.page;
        std::vector<std::string> keys(pages);
        std::vector<RedisPageClient::Op> ops(pages);
        for (size_t i = 0; i < pages; ++i) {
            keys[i] = s.key(offset / s.page + i);
            ops[i] = { RedisPageClient::Kind::Get, keys[i].data(), keys[i].size() };
        }
        // One pipeline of GETs for the whole read (per master on a cluster).
        // The client is held until the pages are copied out: a later write()
        // of these pages takes one under the pool's lock, an ordering the
        // thread sanitizer can see (the real one, the fault's wake-up, goes
        // through the kernel).
        Impl::Lease client(s);
        client->execute(ops.data(), pages);
        int64_t result = int64_t(bytes);
        for (size_t i = 0; i < pages; ++i) {
            const uint64_t index = offset / s.page + i;
            if (ops[i].error) {
                if (result > 0)
                    log::error("store: Redis GET {}{} failed: {}", s.prefix, index, strerror(-ops[i].error));
                result = result > 0 ? ops[i].error : result;
                continue;
            }
            const int64_t r = s.take_value(ops[i].reply, index, static_cast<char*>(buffer) + i * s.page);
            freeReplyObject(ops[i].reply);
            if (r < 0 && result > 0)
                result = r;
        }
        return result;
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    }
}

int64_t RedisStore::write(const void* buffer, size_t bytes, uint64_t offset) noexcept
{
    Impl& s = *impl_;
    if (offset % s.page || bytes % s.page || offset > s.size || bytes > s.size - offset)
        return -EINVAL;
    try {
        const size_t pages = bytes / s.page;
        std::vector<std::string> keys(std::min(pages, kPipeline));
        std::vector<RedisPageClient::Op> ops(keys.size());
        Impl::Lease client(s);
        int64_t result = int64_t(bytes);
        // The values are the caller's buffer: it stays valid and unchanged
        // until write() returns, which is all a retried SET needs.
        for (size_t done = 0; done < pages && result > 0;) {
            const size_t n = std::min(pages - done, kPipeline);
            for (size_t i = 0; i < n; ++i) {
                const uint64_t index = offset / s.page + done + i;
                keys[i] = s.key(index);
                ops[i] = { RedisPageClient::Kind::Set, keys[i].data(), keys[i].size(),
                    static_cast<const char*>(buffer) + (done + i) * s.page, s.page };
            }
            client->execute(ops.data(), n);
            for (size_t i = 0; i < n; ++i) {
                if (ops[i].error == 0)
                    s.mark_written(offset / s.page + done + i, true);
                else if (result > 0)
                    result = ops[i].error;
            }
            done += n;
        }
        if (result < 0)
            log::error("store: a write to Redis under {} failed: {} (the pages stay dirty)", s.prefix, strerror(int(-result)));
        return result;
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    }
}

int RedisStore::Impl::unlink(uint64_t first, uint64_t count) noexcept
{
    try {
        Lease client(*this);
        int result = 0;
        std::vector<uint64_t> pages;
        std::vector<std::string> keys;
        std::vector<RedisPageClient::Op> ops;
        for (uint64_t done = 0; done < count;) {
            const size_t n = size_t(std::min<uint64_t>(count - done, kPipeline));
            pages.clear();
            // Only the pages this store wrote have keys.
            for (size_t i = 0; i < n; ++i)
                if (was_written(first + done + i))
                    pages.push_back(first + done + i);
            keys.resize(pages.size());
            ops.resize(pages.size());
            for (size_t i = 0; i < pages.size(); ++i) {
                keys[i] = key(pages[i]);
                ops[i] = { RedisPageClient::Kind::Unlink, keys[i].data(), keys[i].size() };
            }
            client->execute(ops.data(), ops.size());
            for (size_t i = 0; i < pages.size(); ++i) {
                if (ops[i].error == 0)
                    mark_written(pages[i], false);
                else if (result == 0)
                    result = ops[i].error;
            }
            done += n;
        }
        return result;
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    }
}

int RedisStore::discard(uint64_t offset, uint64_t bytes) noexcept
{
    Impl& s = *impl_;
    if (offset % s.page || bytes % s.page || offset > s.size || bytes > s.size - offset)
        return -EINVAL;
    return s.unlink(offset / s.page, bytes / s.page);
}

} // namespace faultline
