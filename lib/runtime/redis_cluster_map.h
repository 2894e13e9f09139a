// runtime/redis_cluster_map.h — Redis Cluster routing, written here because
// the hiredis of Debian (0.14) has none.
//
// What the Redis Cluster specification defines, and nothing else: the key
// slot (CRC16/XMODEM of the key, or of its first non-empty {hashtag}, modulo
// 16384), the `-MOVED <slot> <host>:<port>` and `-ASK <slot> <host>:<port>`
// redirects, and the slot map a `CLUSTER SLOTS` reply describes: the master
// of every slot, and its replicas' addresses.
//
// crc16, key_slot and parse_redirect are pure and allocation-free. The map
// allocates only when it learns a node it did not know (an address string);
// it is used by one thread at a time (each RedisClusterClient has its own).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisReply;

namespace faultline {

class RedisClusterMap {
public:
    static constexpr uint16_t kSlots = 16384;
    static constexpr uint16_t kNone = 0xffff; // a slot no master serves (yet)

    struct Address {
        std::string host;
        int port = 0;
    };
    struct Redirect {
        enum Kind { Moved, Ask } kind;
        uint16_t slot;
        std::string_view host; // into the error text given to parse_redirect
        int port;
    };

    // CRC16-CCITT/XMODEM (polynomial 0x1021, initial 0, no reflection).
    static uint16_t crc16(const void* data, size_t bytes) noexcept;
    // The slot of a key: only the part between the first '{' and the first
    // '}' after it is hashed, when that part is not empty.
    static uint16_t key_slot(std::string_view key) noexcept;
    // A MOVED or ASK error's parts; nullopt for every other error.
    static std::optional<Redirect> parse_redirect(std::string_view error) noexcept;

    // Replaces the map with a CLUSTER SLOTS reply given by `from` (whose own
    // address stands for an empty host in the reply). False, and the map
    // unchanged, when the reply is not a well-formed, non-empty slot list.
    bool load(const redisReply* slots, const Address& from);

    // The node of an address, added if new. Node numbers never change.
    uint16_t node(std::string_view host, int port);
    const Address& address(uint16_t node) const { return nodes_[node].address; }
    size_t nodes() const noexcept { return nodes_.size(); }

    uint16_t master_of(uint16_t slot) const noexcept { return slots_[slot]; }
    // A MOVED: the slot's master is now `node` (before the map is reloaded).
    void set_master(uint16_t slot, uint16_t node) noexcept { slots_[slot] = node; }
    // The nodes that are master of at least one slot, in node order.
    std::vector<uint16_t> masters() const;
    const std::vector<uint16_t>& replicas_of(uint16_t node) const { return nodes_[node].replicas; }
    // Some master had a replica in the last reply loaded.
    bool has_replicas() const noexcept { return has_replicas_; }

private:
    struct Node {
        Address address;
        std::vector<uint16_t> replicas; // as of the last reply loaded
    };
    std::vector<Node> nodes_;
    std::array<uint16_t, kSlots> slots_ = make_empty();
    bool has_replicas_ = false;

    static constexpr std::array<uint16_t, kSlots> make_empty() noexcept
    {
        std::array<uint16_t, kSlots> a {};
        for (auto& s : a)
            s = kNone;
        return a;
    }
};

} // namespace faultline
