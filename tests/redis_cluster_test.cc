// Far memory on a Redis Cluster (issue 15, part 2 and the failover of part
// 3). First the routing, with no server: CRC16 and key slots against the
// Redis Cluster specification's examples, MOVED/ASK parsing, the slot map
// from CLUSTER SLOTS replies. Then against a real cluster each test starts
// for itself (3 masters, 3 replicas, free loopback ports, a temporary
// directory, nothing saved) and kills after, pass or fail: a region 4x the
// budget comes back byte-exact with its keys on several masters and gone
// after unmap; slots holding swapped pages move to another master mid-run
// (some left half-migrated: ASK, some moved: MOVED) and every page still
// reads back byte-exact; a master killed with SIGKILL is replaced by its
// replica and no page is lost (writes waited for the replica); a write a
// stopped replica never acknowledges keeps its page resident; every node
// killed is SIGBUS in the faulting thread, with no hang. Skipped, with the
// reason, where redis-server or redis-cli is not installed.
#include "runtime/redis_cluster_map.h"
#include "support/guarded_access.h"
#include "support/redis_servers.h"
#include "support/swap_pages.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cstdarg>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <netinet/in.h>
#include <random>
#include <set>
#include <string>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

using Map = RedisClusterMap;

// ---- Routing, no server ----------------------------------------------------

uint16_t slot(const char* key) { return Map::key_slot(key); }

TEST(RedisClusterRouting, Crc16AndKeySlotsAsTheSpecificationSays)
{
    EXPECT_EQ(Map::crc16("123456789", 9), 0x31C3);
    EXPECT_EQ(Map::crc16("", 0), 0);
    EXPECT_EQ(slot("foo"), 12182);
    EXPECT_EQ(slot("bar"), 5061);
    EXPECT_EQ(slot("123456789"), 0x31C3 % 16384);
    // Hash tags: the first '{', the first '}' after it, not empty.
    EXPECT_EQ(slot("{user1000}.following"), slot("{user1000}.followers"));
    EXPECT_EQ(slot("{user1000}.following"), slot("user1000"));
    EXPECT_EQ(slot("foo{}{bar}"), Map::crc16("foo{}{bar}", 10) % 16384) << "an empty tag hashes the whole key";
    EXPECT_EQ(slot("foo{{bar}}zap"), slot("{bar"));
    EXPECT_EQ(slot("foo{bar}{zap}"), slot("bar"));
    EXPECT_EQ(slot("foo{bar"), Map::crc16("foo{bar", 7) % 16384) << "no '}': the whole key";
    EXPECT_EQ(slot("foo}bar{x}"), slot("x"));
    EXPECT_EQ(slot("{}"), Map::crc16("{}", 2) % 16384);
    // Ours have no braces: whole keys, spread over the slots.
    std::set<uint16_t> seen;
    for (int i = 0; i < 64; ++i)
        seen.insert(Map::key_slot("faultline:h:1:00ff:" + std::to_string(i)));
    EXPECT_GT(seen.size(), 60u);
}

TEST(RedisClusterRouting, MovedAndAskErrorsAreParsedAndOthersAreNot)
{
    auto m = Map::parse_redirect("MOVED 3999 127.0.0.1:6381");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->kind, Map::Redirect::Moved);
    EXPECT_EQ(m->slot, 3999);
    EXPECT_EQ(m->host, "127.0.0.1");
    EXPECT_EQ(m->port, 6381);

    auto a = Map::parse_redirect("ASK 16383 cache-3.internal:7000");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->kind, Map::Redirect::Ask);
    EXPECT_EQ(a->slot, 16383);
    EXPECT_EQ(a->host, "cache-3.internal");
    EXPECT_EQ(a->port, 7000);

    auto v6 = Map::parse_redirect("MOVED 0 ::1:7001");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->port, 7001);
    auto bracketed = Map::parse_redirect("ASK 1 [fe80::1]:7002");
    ASSERT_TRUE(bracketed);
    EXPECT_EQ(bracketed->host, "fe80::1");

    auto empty_host = Map::parse_redirect("MOVED 12 :7003"); // "the node that answered"
    ASSERT_TRUE(empty_host);
    EXPECT_EQ(empty_host->host, "");
    EXPECT_EQ(empty_host->port, 7003);

    for (const char* other : { "ERR unknown command", "CLUSTERDOWN The cluster is down", "MOVED", "MOVED 12",
             "MOVED 16384 h:1", "MOVED x h:1", "MOVED 12 h", "MOVED 12 h:", "MOVED 12 h:0", "MOVED 12 h:65536",
             "ASK 1 h:7x", "TRYAGAIN", "moved 1 h:1", "" })
        EXPECT_FALSE(Map::parse_redirect(other)) << other;
}

// CLUSTER SLOTS replies built by hand (hiredis' reply structs).
class Replies {
public:
    redisReply* integer(long long v)
    {
        auto* r = make(REDIS_REPLY_INTEGER);
        r->integer = v;
        return r;
    }
    redisReply* string(const std::string& s)
    {
        auto* r = make(REDIS_REPLY_STRING);
        strings_.push_back(s);
        r->str = strings_.back().data();
        r->len = s.size();
        return r;
    }
    redisReply* array(std::vector<redisReply*> items)
    {
        auto* r = make(REDIS_REPLY_ARRAY);
        arrays_.push_back(std::move(items));
        r->element = arrays_.back().data();
        r->elements = arrays_.back().size();
        return r;
    }
    redisReply* node(const std::string& host, int port) { return array({ string(host), integer(port), string("id") }); }

private:
    redisReply* make(int type)
    {
        replies_.emplace_back();
        redisReply* r = &replies_.back();
        std::memset(r, 0, sizeof *r);
        r->type = type;
        return r;
    }
    std::list<redisReply> replies_;
    std::list<std::string> strings_;
    std::list<std::vector<redisReply*>> arrays_;
};

TEST(RedisClusterRouting, TheSlotMapComesFromClusterSlotsWithReplicas)
{
    Replies b;
    redisReply* reply = b.array({
        b.array({ b.integer(0), b.integer(5460), b.node("10.0.0.1", 7000), b.node("10.0.0.4", 7003) }),
        b.array({ b.integer(5461), b.integer(10922), b.node("", 7001), b.node("10.0.0.5", 7004) }),
        b.array({ b.integer(10923), b.integer(16383), b.node("10.0.0.3", 7002) }),
    });
    Map map;
    const Map::Address from { "10.0.0.2", 7001 };
    ASSERT_TRUE(map.load(reply, from));
    const uint16_t a = map.master_of(0), second = map.master_of(5461), c = map.master_of(16383);
    EXPECT_EQ(map.address(a).host, "10.0.0.1");
    EXPECT_EQ(map.address(a).port, 7000);
    EXPECT_EQ(map.master_of(5460), a);
    EXPECT_EQ(map.address(second).host, "10.0.0.2") << "an empty host is the answering node's";
    EXPECT_EQ(map.master_of(10922), second);
    EXPECT_EQ(map.address(c).port, 7002);
    EXPECT_EQ(map.master_of(10923), c);
    ASSERT_EQ(map.replicas_of(a).size(), 1u);
    EXPECT_EQ(map.address(map.replicas_of(a)[0]).port, 7003);
    EXPECT_TRUE(map.replicas_of(c).empty());
    EXPECT_TRUE(map.has_replicas());
    EXPECT_EQ(map.masters().size(), 3u);
    EXPECT_EQ(map.nodes(), 5u);
    EXPECT_EQ(map.node("10.0.0.1", 7000), a) << "a known node keeps its number";

    // A MOVED moves one slot until the next load.
    map.set_master(0, c);
    EXPECT_EQ(map.master_of(0), c);
    EXPECT_EQ(map.master_of(1), a);

    // Malformed replies change nothing.
    for (redisReply* bad : { b.array({}), b.integer(3),
             b.array({ b.array({ b.integer(5), b.integer(4), b.node("h", 1) }) }),
             b.array({ b.array({ b.integer(0), b.integer(16384), b.node("h", 1) }) }),
             b.array({ b.array({ b.integer(0), b.integer(10), b.array({ b.string("h") }) }) }) }) {
        EXPECT_FALSE(map.load(bad, from));
        EXPECT_EQ(map.master_of(0), c);
        EXPECT_EQ(map.master_of(16383), c);
    }

    // A later map with slots nobody serves (a failover under way) and no
    // replicas; '?' is a node whose address is unknown.
    redisReply* partial = b.array({
        b.array({ b.integer(0), b.integer(99), b.node("10.0.0.1", 7000) }),
        b.array({ b.integer(100), b.integer(199), b.node("?", 7009) }),
    });
    ASSERT_TRUE(map.load(partial, from));
    EXPECT_EQ(map.master_of(0), a);
    EXPECT_EQ(map.master_of(150), Map::kNone);
    EXPECT_EQ(map.master_of(16383), Map::kNone);
    EXPECT_FALSE(map.has_replicas());
    EXPECT_TRUE(map.replicas_of(a).empty());
}

// ---- A real cluster --------------------------------------------------------

constexpr unsigned kBatch = kSwapBatch;
constexpr int kNodes = RedisCluster::kNodes;

// The page's bytes as written, read in a guard: a SIGBUS is a failure of
// the test, not the end of the test program.
bool page_ok(const char* base, size_t page, unsigned gen)
{
    bool ok = true;
    const int sig = guarded_access([&] {
        for (size_t at = 0; at < kPage; ++at)
            if (static_cast<unsigned char>(base[page * kPage + at]) != pattern(page, at, gen)) {
                ok = false;
                return;
            }
    });
    return sig == 0 && ok;
}

bool wait_for(const std::function<bool()>& done) { return RedisCluster::wait_for_ms(3000, done); }

std::string own_namespace()
{
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    return std::string("faultline:") + host + ":" + std::to_string(getpid()) + ":";
}

size_t total(const std::map<int, std::vector<std::string>>& keys)
{
    size_t n = 0;
    for (const auto& [node, list] : keys)
        n += list.size();
    return n;
}

// A runtime with 4x its budget written, most of it swapped to the cluster.
struct Swapped {
    std::unique_ptr<Runtime> rt;
    char* p = nullptr;
    size_t pages = 0;
};

constexpr size_t kBudget = 64;

Swapped swap_out(const std::string& url, unsigned gen)
{
    Swapped s;
    auto created = Runtime::create(redis_config(kBudget, url));
    EXPECT_TRUE(created) << created.error().message();
    if (!created)
        return s;
    s.rt = std::move(*created);
    s.pages = 4 * kBudget;
    auto r = s.rt->map_anonymous({ .size = s.pages * kPage });
    EXPECT_TRUE(r);
    if (!r)
        return s;
    s.p = static_cast<char*>(*r);
    for (size_t i = 0; i < s.pages; ++i)
        fill_page(s.p, i, gen);
    EXPECT_TRUE(wait_for([&] { return s.rt->stats().swapped_out >= s.pages - kBudget - kBatch; }))
        << s.rt->stats().swapped_out << " swapped out";
    return s;
}

TEST(RedisCluster, FourTimesTheBudgetComesBackByteExactFromSeveralMastersAndItsKeysGoAfterUnmap)
{
    CLUSTER_OR_SKIP(cluster);
    UFFD_OR_SKIP();
    // Any node is a seed: a replica's address finds the masters too.
    int replica = 0;
    while (replica < kNodes && cluster.is_master(replica))
        ++replica;
    ASSERT_LT(replica, kNodes);
    // Keys of a dead process of this host, which the start sweeps from
    // whichever master holds them; those of a live one and of another host
    // stay.
    const pid_t gone = fork();
    ASSERT_GE(gone, 0);
    if (gone == 0)
        _exit(0);
    ASSERT_EQ(waitpid(gone, nullptr, 0), gone);
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    std::vector<std::string> dead;
    for (int i = 0; i < 12; ++i) {
        dead.push_back(std::string("faultline:") + host + ":" + std::to_string(gone) + ":00ff:" + std::to_string(i));
        ASSERT_TRUE(cluster.set(dead.back()));
    }
    const std::string alive = own_namespace() + "00ee:7";
    const std::string elsewhere = "faultline:some-other-host:" + std::to_string(gone) + ":00dd:7";
    ASSERT_TRUE(cluster.set(alive));
    ASSERT_TRUE(cluster.set(elsewhere));
    std::set<int> holders;
    for (const auto& [node, list] : cluster.keys("faultline:*:00ff:*"))
        holders.insert(node);
    EXPECT_GE(holders.size(), 2u) << "the dead process's keys are on several masters";

    Swapped s = swap_out(cluster.url(replica), 1);
    EXPECT_EQ(total(cluster.keys("faultline:*:00ff:*")), 0u) << "the start sweeps every master";
    EXPECT_EQ(total(cluster.keys(alive)), 1u);
    EXPECT_EQ(total(cluster.keys(elsewhere)), 1u);
    for (const auto& k : { alive, elsewhere })
        ASSERT_TRUE(cluster.del(k));
    ASSERT_TRUE(s.p);
    const auto keys = cluster.keys("faultline:*");
    EXPECT_GE(total(keys), s.pages - kBudget - kBatch);
    EXPECT_GE(keys.size(), 2u) << "the keys spread over the masters by their slots";
    for (const auto& [node, list] : keys)
        for (const auto& k : list)
            ASSERT_EQ(k.rfind(own_namespace(), 0), 0u) << k;
    for (size_t i = 0; i < s.pages; ++i)
        ASSERT_TRUE(page_ok(s.p, i, 1)) << "page " << i;
    const auto st = s.rt->stats();
    EXPECT_GT(st.swapped_in, 0u);
    EXPECT_EQ(st.swap_read_errors, 0u);
    EXPECT_EQ(st.swap_write_errors, 0u);
    ASSERT_TRUE(s.rt->unmap(s.p, s.pages * kPage));
    EXPECT_TRUE(wait_for([&] { return total(cluster.keys("faultline:*")) == 0; }))
        << total(cluster.keys("faultline:*")) << " keys left after unmap";
    // And the namespace of a runtime destroyed with pages swapped is
    // deleted from every master.
    Swapped again = swap_out(cluster.url(0), 2);
    ASSERT_TRUE(again.p);
    EXPECT_GE(cluster.keys("faultline:*").size(), 2u);
    again.rt.reset();
    EXPECT_EQ(total(cluster.keys("faultline:*")), 0u);
}

TEST(RedisCluster, SlotsMovedToAnotherMasterMidRunStillReadBackByteExact)
{
    CLUSTER_OR_SKIP(cluster);
    UFFD_OR_SKIP();
    Swapped s = swap_out(cluster.url(), 3);
    ASSERT_TRUE(s.p);
    // The master with the most of our keys gives some of their slots away.
    const auto keys = cluster.keys(own_namespace() + "*");
    int from = -1, to = -1;
    for (const auto& [node, list] : keys)
        if (from < 0 || list.size() > keys.at(from).size())
            from = node;
    for (int i = 0; i < kNodes; ++i)
        if (i != from && cluster.is_master(i))
            to = i;
    ASSERT_GE(from, 0);
    ASSERT_GE(to, 0);
    const std::string from_id = cluster.id(from), to_id = cluster.id(to);
    std::vector<uint16_t> asked, moved; // half-migrated slots (ASK), then moved ones (MOVED)
    for (const auto& k : keys.at(from)) {
        const uint16_t sl = Map::key_slot(k);
        if (std::find(asked.begin(), asked.end(), sl) != asked.end() || std::find(moved.begin(), moved.end(), sl) != moved.end())
            continue;
        (asked.size() <= moved.size() ? asked : moved).push_back(sl);
        if (asked.size() + moved.size() == 16)
            break;
    }
    ASSERT_GE(moved.size(), 2u);
    auto ok = [](const Reply& r) { return r && r->type != REDIS_REPLY_ERROR; };
    for (auto* set : { &asked, &moved })
        for (uint16_t sl : *set) {
            ASSERT_TRUE(ok(RedisCluster::command(cluster.port(to), "CLUSTER SETSLOT %d IMPORTING %s", int(sl), from_id.c_str())));
            ASSERT_TRUE(ok(RedisCluster::command(cluster.port(from), "CLUSTER SETSLOT %d MIGRATING %s", int(sl), to_id.c_str())));
            Reply in_slot = RedisCluster::command(cluster.port(from), "CLUSTER GETKEYSINSLOT %d 100", int(sl));
            ASSERT_TRUE(in_slot && in_slot->type == REDIS_REPLY_ARRAY);
            ASSERT_GE(in_slot->elements, 1u);
            for (size_t k = 0; k < in_slot->elements; ++k) {
                Reply m = RedisCluster::command(cluster.port(from), "MIGRATE 127.0.0.1 %d %b 0 5000", cluster.port(to),
                    in_slot->element[k]->str, in_slot->element[k]->len);
                ASSERT_TRUE(ok(m)) << (m ? std::string(m->str, m->len) : "no reply");
            }
        }
    // The moved slots are the other master's now, on every master; the
    // asked ones stay half-way: their keys are there, the slot here.
    auto finish = [&](const std::vector<uint16_t>& slots) {
        for (uint16_t sl : slots)
            for (int i = 0; i < kNodes; ++i) {
                if (cluster.is_master(i)) {
                    ASSERT_TRUE(ok(RedisCluster::command(cluster.port(i), "CLUSTER SETSLOT %d NODE %s", int(sl), to_id.c_str())));
                }
            }
    };
    finish(moved);
    auto calls = [&](const char* cmd) {
        const std::string info = RedisCluster::text(cluster.port(to), "INFO commandstats");
        const std::string field = std::string("cmdstat_") + cmd + ":calls=";
        const auto at = info.find(field);
        return at == std::string::npos ? 0L : std::strtol(info.c_str() + at + field.size(), nullptr, 10);
    };
    const long asking_before = calls("asking");
    for (size_t i = 0; i < s.pages; ++i)
        ASSERT_TRUE(page_ok(s.p, i, 3)) << "page " << i << " (half-migrated and moved slots)";
    EXPECT_GT(calls("asking"), asking_before) << "the half-migrated slots' keys were asked for on their new master";
    finish(asked);
    // Everything again (swapped out anew meanwhile, some to moved slots).
    for (size_t i = 0; i < s.pages; ++i)
        ASSERT_TRUE(page_ok(s.p, i, 3)) << "page " << i << " (after the migration)";
    EXPECT_EQ(s.rt->stats().swap_read_errors, 0u);
}

TEST(RedisCluster, AKilledMasterIsReplacedByItsReplicaAndNoPageIsLost)
{
    CLUSTER_OR_SKIP(cluster);
    UFFD_OR_SKIP();
    Swapped s = swap_out(cluster.url(), 4);
    ASSERT_TRUE(s.p);
    const auto keys = cluster.keys(own_namespace() + "*");
    int victim = -1;
    for (const auto& [node, list] : keys)
        if (victim < 0 || list.size() > keys.at(victim).size())
            victim = node;
    ASSERT_GE(victim, 0);
    ASSERT_GT(keys.at(victim).size(), 0u);
    // Its replica: the node whose INFO replication names it as master.
    const int replica = cluster.replica_of(victim);
    ASSERT_GE(replica, 0);
    cluster.kill_node(victim);
    ASSERT_TRUE(cluster.promoted(replica, 20000)) << "the replica was not promoted";
    for (size_t i = 0; i < s.pages; ++i)
        ASSERT_TRUE(page_ok(s.p, i, 4)) << "page " << i << " lost with its master";
    EXPECT_EQ(s.rt->stats().swap_read_errors, 0u);
}

TEST(RedisCluster, AWriteNoReplicaAcknowledgesKeepsItsPageResident)
{
    CLUSTER_OR_SKIP(cluster);
    UFFD_OR_SKIP();
    // One master's replica stops answering (alive, connected, silent): that
    // master's WAITs find no replica, so none of its SETs count — a page
    // only there would die with it.
    int master = 0;
    while (master < kNodes && !cluster.is_master(master))
        ++master;
    ASSERT_LT(master, kNodes);
    const int replica = cluster.replica_of(master);
    ASSERT_GE(replica, 0);
    cluster.signal(replica, SIGSTOP);
    auto created = Runtime::create(redis_config(kBudget, cluster.url()));
    ASSERT_TRUE(created) << created.error().message();
    auto rt = std::move(*created);
    const size_t pages = 4 * kBudget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 7);
    // The other masters take pages; the silent one's stay resident.
    EXPECT_TRUE(wait_for([&] { return rt->stats().swapped_out > 0 && rt->stats().swap_write_errors > 0; }))
        << rt->stats().swapped_out << " swapped out, " << rt->stats().swap_write_errors << " write errors";
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 7)) << "page " << i;
    EXPECT_EQ(rt->stats().swap_read_errors, 0u);
    cluster.signal(replica, SIGCONT);
}

TEST(RedisCluster, EveryNodeKilledIsSigbusNotAHangAndOtherMemoryIsServed)
{
    CLUSTER_OR_SKIP(cluster);
    UFFD_OR_SKIP();
    Swapped s = swap_out(cluster.url(), 5);
    ASSERT_TRUE(s.p);
    for (int i = 0; i < kNodes; ++i)
        cluster.kill_node(i);
    const auto start = std::chrono::steady_clock::now();
    // Page 0 was written first: under FIFO it is long swapped out.
    const int sig = guarded_access([&] { (void)*reinterpret_cast<volatile const char*>(s.p); });
    EXPECT_EQ(sig, SIGBUS);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3)) << "a read must fail, not wait";
    EXPECT_GT(s.rt->stats().swap_read_errors, 0u);
    // Writes fail too: the pages stay resident, over the budget.
    auto fresh = s.rt->map_anonymous({ .size = 8 * kPage });
    ASSERT_TRUE(fresh);
    char* q = static_cast<char*>(*fresh);
    for (size_t i = 0; i < 8; ++i)
        fill_page(q, i, 6);
    for (size_t i = 0; i < 8; ++i)
        ASSERT_TRUE(page_ok(q, i, 6)) << "page " << i;
    for (size_t i = s.pages - 8; i < s.pages; ++i)
        ASSERT_TRUE(page_ok(s.p, i, 5)) << "page " << i;
}

} // namespace
} // namespace faultline::testing
