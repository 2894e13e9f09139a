#include "runtime/redis_endpoint.h"

#include "support/try.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <memory>

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

Result<redisContext*> RedisEndpoint::connect(const std::string& host, int port) const
{
    const RedisEndpoint& e = *this;
    redisContext* c = redisConnectWithTimeout(host.c_str(), port, to_timeval(e.connect_timeout_ms));
    if (!c)
        return fail(ENOMEM, "out of memory for a Redis connection");
    if (c->err) {
        const int code = errno_of(c);
        auto failed = failf(code, "cannot connect to Redis at %s:%d: %s", host.c_str(), port, c->errstr);
        redisFree(c);
        return failed;
    }
    // Every command after this gives up after the timeout (the socket's
    // SO_RCVTIMEO/SO_SNDTIMEO): a stalled server is an error, never a hang.
    redisSetTimeout(c, to_timeval(e.command_timeout_ms));
    auto refuse = [&](int code, const char* what, const redisReply* r) {
        // The server's words, never the password (Redis does not echo it).
        auto failed = failf(code, "Redis at %s:%d: %s%s%s", host.c_str(), port, what, r ? ": " : "",
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

int RedisEndpoint::scan_step(redisContext* c, const std::string& pattern, std::string& cursor,
    std::vector<std::string>& keys)
{
    Reply r = command(c, "SCAN %s MATCH %b COUNT 1000", cursor.c_str(), pattern.data(), pattern.size());
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return 0;
    cursor.assign(r->element[0]->str, r->element[0]->len);
    keys.clear();
    for (size_t i = 0; i < r->element[1]->elements; ++i)
        keys.emplace_back(r->element[1]->element[i]->str, r->element[1]->element[i]->len);
    return 1;
}

} // namespace faultline
