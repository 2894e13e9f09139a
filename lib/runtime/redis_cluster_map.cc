#include "runtime/redis_cluster_map.h"

#include <hiredis/hiredis.h>

namespace faultline {

namespace {

// The table-driven form of the bitwise algorithm: for each byte value, the
// CRC of that byte shifted through the polynomial eight times.
constexpr std::array<uint16_t, 256> make_crc_table() noexcept
{
    std::array<uint16_t, 256> t {};
    for (unsigned b = 0; b < 256; ++b) {
        uint16_t crc = uint16_t(b << 8);
        for (int i = 0; i < 8; ++i)
            crc = (crc & 0x8000) ? uint16_t((crc << 1) ^ 0x1021) : uint16_t(crc << 1);
        t[b] = crc;
    }
    return t;
}
constexpr std::array<uint16_t, 256> kCrcTable = make_crc_table();

bool parse_port(std::string_view s, int& out) noexcept
{
    if (s.empty() || s.size() > 5)
        return false;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    out = v;
    return true;
}

// [host, port, ...] of a CLUSTER SLOTS entry.
bool endpoint_of(const redisReply* r, std::string_view& host, int& port) noexcept
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return false;
    const redisReply* h = r->element[0];
    const redisReply* p = r->element[1];
    if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_INTEGER || p->integer <= 0 || p->integer > 65535)
        return false;
    host = std::string_view(h->str, h->len);
    port = int(p->integer);
    return true;
}

} // namespace

uint16_t RedisClusterMap::crc16(const void* data, size_t bytes) noexcept
{
    const auto* p = static_cast<const unsigned char*>(data);
    uint16_t crc = 0;
    for (size_t i = 0; i < bytes; ++i)
        crc = uint16_t((crc << 8) ^ kCrcTable[((crc >> 8) ^ p[i]) & 0xff]);
    return crc;
}

uint16_t RedisClusterMap::key_slot(std::string_view key) noexcept
{
    // The specification's rule, to the letter: the first '{', then the
    // first '}' after it; an empty tag ("{}") or no '}' hashes the whole key
    // (so "foo{}{bar}" is hashed whole, "foo{{bar}}" hashes "{bar").
    if (auto open = key.find('{'); open != key.npos)
        if (auto close = key.find('}', open + 1); close != key.npos && close != open + 1)
            key = key.substr(open + 1, close - open - 1);
    return uint16_t(crc16(key.data(), key.size()) & (kSlots - 1));
}

std::optional<RedisClusterMap::Redirect> RedisClusterMap::parse_redirect(std::string_view e) noexcept
{
    Redirect r {};
    if (e.starts_with("MOVED "))
        r.kind = Redirect::Moved, e.remove_prefix(6);
    else if (e.starts_with("ASK "))
        r.kind = Redirect::Ask, e.remove_prefix(4);
    else
        return std::nullopt;
    const auto space = e.find(' ');
    if (space == e.npos || space == 0 || space > 5)
        return std::nullopt;
    unsigned slot = 0;
    for (char c : e.substr(0, space)) {
        if (c < '0' || c > '9')
            return std::nullopt;
        slot = slot * 10 + unsigned(c - '0');
    }
    if (slot >= kSlots)
        return std::nullopt;
    r.slot = uint16_t(slot);
    e.remove_prefix(space + 1);
    // host:port, where the host may be an IPv6 address with colons of its
    // own: the port is after the last one. An empty host is allowed (the
    // specification: "the same host as the node that redirected").
    const auto colon = e.rfind(':');
    if (colon == e.npos || !parse_port(e.substr(colon + 1), r.port))
        return std::nullopt;
    r.host = e.substr(0, colon);
    if (r.host.size() >= 2 && r.host.front() == '[' && r.host.back() == ']')
        r.host = r.host.substr(1, r.host.size() - 2);
    return r;
}

uint16_t RedisClusterMap::node(std::string_view host, int port)
{
    for (size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].address.port == port && nodes_[i].address.host == host)
            return uint16_t(i);
    nodes_.push_back(Node { Address { std::string(host), port }, {} });
    return uint16_t(nodes_.size() - 1);
}

bool RedisClusterMap::load(const redisReply* reply, const Address& from)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements == 0)
        return false;
    // Checked whole before anything changes: a torn reply must not leave a
    // half-updated map.
    for (size_t i = 0; i < reply->elements; ++i) {
        const redisReply* e = reply->element[i];
        std::string_view host;
        int port;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER
            || e->element[1]->type != REDIS_REPLY_INTEGER || e->element[0]->integer < 0
            || e->element[1]->integer >= kSlots || e->element[0]->integer > e->element[1]->integer
            || !endpoint_of(e->element[2], host, port))
            return false;
    }
    auto resolve = [&](std::string_view host, int port) -> std::optional<uint16_t> {
        // "" is the answering node's own host; "?" a node whose address
        // that node does not know (unusable until a later reply).
        if (host == "?")
            return std::nullopt;
        return node(host.empty() ? std::string_view(from.host) : host, port);
    };
    auto slots = make_empty();
    for (auto& n : nodes_)
        n.replicas.clear();
    has_replicas_ = false;
    for (size_t i = 0; i < reply->elements; ++i) {
        const redisReply* e = reply->element[i];
        std::string_view host;
        int port;
        endpoint_of(e->element[2], host, port);
        const auto master = resolve(host, port);
        if (!master)
            continue;
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; ++s)
            slots[size_t(s)] = *master;
        for (size_t r = 3; r < e->elements; ++r) {
            if (!endpoint_of(e->element[r], host, port))
                continue;
            if (const auto replica = resolve(host, port)) {
                auto& list = nodes_[*master].replicas;
                bool known = false;
                for (uint16_t x : list)
                    known |= x == *replica;
                if (!known)
                    list.push_back(*replica);
                has_replicas_ = true;
            }
        }
    }
    slots_ = slots;
    return true;
}

std::vector<uint16_t> RedisClusterMap::masters() const
{
    std::vector<bool> is(nodes_.size());
    for (uint16_t s : slots_)
        if (s != kNone)
            is[s] = true;
    std::vector<uint16_t> out;
    for (size_t i = 0; i < is.size(); ++i)
        if (is[i])
            out.push_back(uint16_t(i));
    return out;
}

} // namespace faultline
