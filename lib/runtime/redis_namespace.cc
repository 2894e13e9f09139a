#include "runtime/redis_namespace.h"

#include "runtime/redis_page_client.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sys/random.h>
#include <unistd.h>
#include <vector>

namespace faultline {

std::string RedisNamespace::host()
{
    char host[256] = "unknown";
    (void)gethostname(host, sizeof host - 1);
    for (char* c = host; *c; ++c)
        if (*c == ':')
            *c = '_'; // the separator of the key's fields
    return host;
}

std::string RedisNamespace::fresh_prefix(const std::string& host)
{
    uint64_t random = 0;
    if (getrandom(&random, sizeof random, 0) != ssize_t(sizeof random))
        random = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^ uint64_t(getpid()) << 32;
    char prefix[512];
    snprintf(prefix, sizeof prefix, "faultline:%s:%d:%016llx:", host.c_str(), int(getpid()), (unsigned long long)random);
    return prefix;
}

bool RedisNamespace::is_dead(std::string_view k, size_t pid_at, std::unordered_map<long, bool>& dead)
{
    if (k.size() <= pid_at)
        return false;
    // Parsed from a copy that outlives the parse (`end` points into it).
    const std::string digits(k.substr(pid_at, 16));
    char* end = nullptr;
    const long pid = strtol(digits.c_str(), &end, 10);
    if (pid <= 0 || !end || *end != ':')
        return false;
    auto [it, fresh] = dead.try_emplace(pid, false);
    if (fresh)
        it->second = kill(pid_t(pid), 0) != 0 && errno == ESRCH;
    return it->second;
}

size_t RedisNamespace::sweep_dead(RedisPageClient& client, const std::string& host) noexcept
{
    size_t swept = 0;
    try {
        // faultline:<host>:<pid>:... — only this host's: a pid means
        // nothing elsewhere.
        const std::string match = "faultline:" + host + ":*";
        const size_t pid_at = match.size() - 1;
        std::unordered_map<long, bool> dead;
        (void)client.scan(match, [&](std::vector<std::string>& keys) {
            std::vector<RedisPageClient::Op> ops;
            for (const auto& k : keys)
                if (is_dead(k, pid_at, dead))
                    ops.push_back({ RedisPageClient::Kind::Unlink, k.data(), k.size() });
            client.execute(ops.data(), ops.size());
            for (const auto& op : ops)
                swept += op.error == 0;
        });
    } catch (const std::bad_alloc&) {
    }
    return swept;
}

bool RedisNamespace::delete_all(RedisPageClient& client, const std::string& prefix) noexcept
{
    try {
        return client.scan(prefix + "*", [&](std::vector<std::string>& keys) {
            std::vector<RedisPageClient::Op> ops(keys.size());
            for (size_t i = 0; i < keys.size(); ++i)
                ops[i] = { RedisPageClient::Kind::Unlink, keys[i].data(), keys[i].size() };
            client.execute(ops.data(), ops.size());
        });
    } catch (const std::bad_alloc&) {
        return false;
    }
}

} // namespace faultline
