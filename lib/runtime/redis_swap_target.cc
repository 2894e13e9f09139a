#include "runtime/redis_swap_target.h"

#include "support/try.h"

#include "support/log.h"
#include "support/runtime_thread.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/random.h>
#include <unistd.h>
#include <csignal>
#include <unordered_map>
#include <vector>

namespace faultline {

namespace {

timeval to_timeval(unsigned ms) noexcept
{
    return { time_t(ms / 1000), suseconds_t((ms % 1000) * 1000) };
}

std::string percent_decode(std::string_view s)
{
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            char hex[3] = { s[i + 1], s[i + 2], 0 };
            char* end = nullptr;
            const long v = strtol(hex, &end, 16);
            if (end == hex + 2) {
                out += char(v);
                i += 2;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

bool parse_ms(std::string_view v, unsigned& out) noexcept
{
    if (v.empty() || v.size() > 9 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
    out = unsigned(std::strtoul(std::string(v).c_str(), nullptr, 10));
    return out > 0;
}

// hiredis keeps no errno, only its message: the errno a caller can act on.
int errno_of(const redisContext* c) noexcept
{
    const char* s = c->errstr;
    if (strstr(s, "refused"))
        return ECONNREFUSED;
    if (strstr(s, "timed out") || strstr(s, "temporarily unavailable"))
        return ETIMEDOUT;
    if (strstr(s, "Name or service") || strstr(s, "not known") || strstr(s, "resolution"))
        return EHOSTUNREACH;
    if (c->err == REDIS_ERR_EOF)
        return ECONNRESET;
    return EIO;
}

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

Result<RedisEndpoint> RedisEndpoint::parse(const std::string& url)
{
    if (!is_url(url))
        return failf(EINVAL, "not a redis:// URL: %s", url.c_str());
    RedisEndpoint e;
    std::string_view rest = std::string_view(url).substr(strlen("redis://"));
    std::string_view query;
    if (auto q = rest.find('?'); q != rest.npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }
    if (!rest.empty() && rest.back() == '/')
        rest.remove_suffix(1);
    if (rest.find('/') != rest.npos)
        return fail(EINVAL, "redis:// URL: database numbers are not supported (keys go to database 0)");
    if (auto at = rest.rfind('@'); at != rest.npos) {
        std::string_view userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        if (auto colon = userinfo.find(':'); colon != userinfo.npos) {
            e.user = percent_decode(userinfo.substr(0, colon));
            e.password = percent_decode(userinfo.substr(colon + 1));
        } else {
            // redis://secret@host is the common spelling of a password alone.
            e.password = percent_decode(userinfo);
        }
    }
    if (rest.empty())
        return fail(EINVAL, "redis:// URL: no host");
    std::string_view port;
    if (rest.front() == '[') {
        auto close = rest.find(']');
        if (close == rest.npos)
            return fail(EINVAL, "redis:// URL: unclosed [ in the host");
        e.host = std::string(rest.substr(1, close - 1));
        rest = rest.substr(close + 1);
        if (!rest.empty() && rest.front() == ':')
            port = rest.substr(1);
        else if (!rest.empty())
            return fail(EINVAL, "redis:// URL: junk after the host");
    } else if (auto colon = rest.rfind(':'); colon != rest.npos) {
        e.host = std::string(rest.substr(0, colon));
        port = rest.substr(colon + 1);
    } else {
        e.host = std::string(rest);
    }
    if (e.host.empty())
        return fail(EINVAL, "redis:// URL: no host");
    if (!port.empty()) {
        unsigned p = 0;
        if (!parse_ms(port, p) || p > 65535)
            return fail(EINVAL, "redis:// URL: bad port");
        e.port = int(p);
    }
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view kv = query.substr(0, amp);
        query = amp == query.npos ? std::string_view() : query.substr(amp + 1);
        auto eq = kv.find('=');
        std::string_view k = kv.substr(0, eq), v = eq == kv.npos ? std::string_view() : kv.substr(eq + 1);
        unsigned* field = k == "connect_timeout_ms" ? &e.connect_timeout_ms
            : k == "command_timeout_ms"             ? &e.command_timeout_ms
                                                    : nullptr;
        if (!field)
            return failf(EINVAL, "redis:// URL: unknown parameter '%.*s'", int(k.size()), k.data());
        if (!parse_ms(v, *field))
            return failf(EINVAL, "redis:// URL: %.*s must be a positive number of milliseconds", int(k.size()), k.data());
    }
    // The environment keeps the password out of command lines and ps(1).
    if (e.password.empty())
        if (const char* pw = getenv("FAULTLINE_REDIS_PASSWORD"); pw && *pw)
            e.password = pw;
    return e;
}

Result<std::unique_ptr<RedisSwapTarget>> RedisSwapTarget::create(const std::string& url, size_t page_size)
{
    RedisEndpoint endpoint = TRY(RedisEndpoint::parse(url));
    char host[256] = "unknown";
    (void)gethostname(host, sizeof host - 1);
    for (char* c = host; *c; ++c)
        if (*c == ':')
            *c = '_'; // the separator of the key's fields
    uint64_t random = 0;
    if (getrandom(&random, sizeof random, 0) != ssize_t(sizeof random))
        random = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^ uint64_t(getpid()) << 32;
    char prefix[512];
    snprintf(prefix, sizeof prefix, "faultline:%s:%d:%016llx:", host, int(getpid()), (unsigned long long)random);
    std::unique_ptr<RedisSwapTarget> target(new RedisSwapTarget(std::move(endpoint), page_size, prefix));
    // Both connections now: an unreachable server or a refused password
    // fails the runtime's creation, not the first eviction.
    target->reader_.ctx = TRY(target->connect());
    target->writer_.ctx = TRY(target->connect());
    target->sweep_dead(host);
    try {
        target->thread_ = std::thread([t = target.get()] { t->run(); });
    } catch (const std::system_error& e) {
        return failf(e.code().value(), "cannot start the Redis swap thread: %s", e.what());
    }
    log::info("swap: Redis at {}:{}, keys {}<slot>", target->endpoint_.host, target->endpoint_.port, target->prefix_);
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
    const RedisEndpoint& e = endpoint_;
    redisContext* c = redisConnectWithTimeout(e.host.c_str(), e.port, to_timeval(e.connect_timeout_ms));
    if (!c)
        return fail(ENOMEM, "out of memory for a Redis connection");
    if (c->err) {
        const int code = errno_of(c);
        auto failed = failf(code, "cannot connect to Redis at %s:%d: %s", e.host.c_str(), e.port, c->errstr);
        redisFree(c);
        return failed;
    }
    // Every command after this gives up after the timeout (the socket's
    // SO_RCVTIMEO/SO_SNDTIMEO): a stalled server is an error, never a hang.
    redisSetTimeout(c, to_timeval(e.command_timeout_ms));
    auto refuse = [&](int code, const char* what, const redisReply* r) {
        // The server's words, never the password (Redis does not echo it).
        auto failed = failf(code, "Redis at %s:%d: %s%s%s", e.host.c_str(), e.port, what, r ? ": " : "",
            r ? std::string(r->str, r->len).c_str() : c->errstr);
        redisFree(c);
        return failed;
    };
    if (!e.password.empty()) {
        Reply r = e.user.empty()
            ? command(c, "AUTH %b", e.password.data(), e.password.size())
            : command(c, "AUTH %b %b", e.user.data(), e.user.size(), e.password.data(), e.password.size());
        if (!r)
            return refuse(errno_of(c), "AUTH failed", nullptr);
        if (r->type == REDIS_REPLY_ERROR)
            return refuse(EACCES, "the password was refused", r.get());
    }
    Reply r = command(c, "PING");
    if (!r)
        return refuse(errno_of(c), "PING failed", nullptr);
    if (r->type == REDIS_REPLY_ERROR) {
        const bool noauth = r->len >= 6 && !memcmp(r->str, "NOAUTH", 6);
        return refuse(noauth ? EACCES : EIO,
            noauth ? "a password is needed (in the URL or FAULTLINE_REDIS_PASSWORD)" : "PING refused", r.get());
    }
    return c;
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

void RedisSwapTarget::serve_reads(ReadRequest* batch, size_t n) noexcept
{
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
            int32_t result;
            if (r->type == REDIS_REPLY_STRING && size_t(r->len) == page_) {
                memcpy(q.buffer, r->str, page_);
                result = int32_t(page_);
            } else {
                // The pager wrote this slot and never freed it: a missing
                // value (evicted by maxmemory, flushed) or one of another
                // size is data lost, answered SIGBUS.
                if (r->type == REDIS_REPLY_STRING)
                    log::error("swap: Redis key {}{} holds {} bytes, not a page: corrupt", prefix_, q.slot, r->len);
                else if (r->type == REDIS_REPLY_NIL)
                    log::error("swap: Redis key {}{} is missing (evicted or flushed by the server?)", prefix_, q.slot);
                else
                    log::error("swap: Redis GET {}{} failed: {}", prefix_, q.slot,
                        r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : std::string("unexpected reply"));
                result = -EIO;
            }
            q.op->complete(q.op, result);
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

namespace {

// The evictor reads a page it has write-protected: the kernel orders every
// write to it before the protection (a write after it faults, and its pin
// cancels the eviction). ThreadSanitizer cannot see that order through the
// page tables and reports the read as racing with the program's last write,
// so this one copy is left uninstrumented — and hiredis then copies our
// private buffer, never the program's page. (A file target needs none of
// this: io_uring reads the page in the kernel.)
__attribute__((no_sanitize("thread"))) void copy_protected_page(char* to, const char* from, size_t bytes) noexcept
{
    for (size_t i = 0; i < bytes; i += sizeof(uint64_t)) {
        uint64_t word;
        __builtin_memcpy(&word, from + i, sizeof word);
        __builtin_memcpy(to + i, &word, sizeof word);
    }
}

} // namespace

void RedisSwapTarget::write(Write* writes, size_t count) noexcept
{
    std::lock_guard g(release_lock_);
    // Before the SETs, on this connection: a slot freed and reused since
    // must lose its old key before it gets the new one, not after.
    unlink_released(writer_);
    redisContext* c = ensure(writer_);
    size_t answered = 0;
    if (c) {
        char k[600];
        size_t queued = 0;
        for (; queued < count; ++queued) {
            const size_t len = key(k, writes[queued].slot);
            // hiredis formats the command into its buffer at once: one
            // staging page serves the whole batch.
            copy_protected_page(staging_.get(), static_cast<const char*>(writes[queued].data), page_);
            if (redisAppendCommand(c, "SET %b %b", k, len, staging_.get(), page_) != REDIS_OK)
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
            if (r->type == REDIS_REPLY_ERROR) {
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
                if (k.size() <= pid_at)
                    continue;
                // Parsed from a copy that outlives the parse (`end` points into it).
                const std::string digits(k.substr(pid_at, 16));
                char* end = nullptr;
                const long pid = strtol(digits.c_str(), &end, 10);
                if (pid <= 0 || !end || *end != ':')
                    continue;
                auto [it, fresh] = dead.try_emplace(pid, false);
                if (fresh)
                    it->second = kill(pid_t(pid), 0) != 0 && errno == ESRCH;
                if (it->second) {
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

} // namespace faultline
