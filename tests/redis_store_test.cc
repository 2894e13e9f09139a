// RedisStore (faultline/redis_store.h) and its C API, against real
// redis-servers each test starts for itself (tests/support/redis_servers.h):
// store regions come back byte-exact through one node and through a
// 3-master cluster, their reads really reach Redis, keys are per store and
// page and go with the store (and with discard); a wrong or missing password,
// an unreachable address and a server that does not answer fail at creation
// with their errno (EACCES, ECONNREFUSED, ETIMEDOUT); a value of
// the wrong size, a written page whose key is gone and a killed server are
// SIGBUS in the faulting thread only, never a hang; a master killed after a
// sync loses no page once its replica is promoted; the keys a dead process
// left are swept by the next store; examples/far_heap runs against a
// cluster. Skipped, saying why, without redis-server.
#include <faultline/faultline.h>
#include <faultline/redis_store.h>

#include "fork_support.h"
#include "support/guarded_access.h"
#include "support/process_output.h"
#include "support/redis_servers.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <thread>

namespace faultline::testing {
namespace {

constexpr size_t kPages = 64;

unsigned char byte_at(size_t page, size_t at, unsigned gen)
{
    return static_cast<unsigned char>(page * 151 + at * 13 + gen * 37 + 5);
}

void fill(char* base, size_t pages, unsigned gen)
{
    for (size_t p = 0; p < pages; ++p)
        for (size_t at = 0; at < kPage; ++at)
            base[p * kPage + at] = char(byte_at(p, at, gen));
}

// The first page that differs, or -1.
long first_bad(const char* base, size_t pages, unsigned gen)
{
    for (size_t p = 0; p < pages; ++p)
        for (size_t at = 0; at < kPage; ++at)
            if (static_cast<unsigned char>(base[p * kPage + at]) != byte_at(p, at, gen))
                return long(p);
    return -1;
}

std::shared_ptr<RedisStore> make_store(const std::string& url, size_t pages = kPages, const std::string& name = "t")
{
    auto s = RedisStore::create({ .url = url, .size = pages * kPage, .name = name });
    EXPECT_TRUE(s) << s.error().message();
    return s ? *s : nullptr;
}

#define RUNTIME_OR_SKIP(rt)                                                                                \
    auto rt##_created = Runtime::create();                                                                 \
    if (!rt##_created)                                                                                     \
        GTEST_SKIP() << "userfaultfd unavailable: " << rt##_created.error().message();                     \
    auto rt = std::move(*rt##_created)

char* map_rw(Runtime& rt, const std::shared_ptr<RedisStore>& store, size_t pages = kPages)
{
    auto r = rt.map_store(store, { .length = pages * kPage, .access = Access::ReadWrite, .name = "redis" });
    EXPECT_TRUE(r) << r.error().message();
    return r ? static_cast<char*>(*r) : nullptr;
}

// GET calls the server has answered so far (INFO commandstats).
long long get_calls(int port)
{
    const std::string s = RedisCluster::text(port, "INFO commandstats");
    const auto at = s.find("cmdstat_get:calls=");
    return at == s.npos ? 0 : atoll(s.c_str() + at + 18);
}

// Writes gen into a fresh region of the store, syncs, unmaps (the cache is
// dropped with its last region: the next map reads Redis).
void write_through(Runtime& rt, const std::shared_ptr<RedisStore>& store, unsigned gen)
{
    char* p = map_rw(rt, store);
    ASSERT_NE(p, nullptr);
    fill(p, kPages, gen);
    auto synced = rt.sync(p, kPages * kPage);
    ASSERT_TRUE(synced) << synced.error().message();
    ASSERT_TRUE(rt.unmap(p, kPages * kPage));
}

// write_through() from a runtime of its own, gone when it returns: the
// caller's runtime then holds none of the pages in its cache (a cache can
// outlive its last region for a while), so what it reads comes from Redis.
void write_through_elsewhere(const std::shared_ptr<RedisStore>& store, unsigned gen)
{
    auto writer = Runtime::create();
    ASSERT_TRUE(writer) << writer.error().message();
    write_through(**writer, store, gen);
}

// Lets go of both (the runtime, which holds the store while its cache
// lives, first): the store's keys go then. Returns their prefix.
std::string release(std::unique_ptr<Runtime>& rt, std::shared_ptr<RedisStore>& store)
{
    std::string prefix = store->key_prefix();
    rt.reset();
    store.reset();
    return prefix;
}

int touch(const char* p) { return guarded_access([&] { (void)*reinterpret_cast<volatile const char*>(p); }); }

TEST(RedisStore, RoundTripThroughOneNodeIsByteExactAndReadsComeFromRedis)
{
    REDIS_OR_SKIP(server);
    RUNTIME_OR_SKIP(rt);
    auto store = make_store(server.url());
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->cluster());
    // A fresh store is zeros (no key yet), as a sparse file.
    {
        auto r = rt->map_store(store, { .length = kPages * kPage, .access = Access::Read });
        ASSERT_TRUE(r);
        const char* p = static_cast<const char*>(*r);
        for (size_t i = 0; i < kPages * kPage; i += 997)
            ASSERT_EQ(p[i], 0) << i;
        ASSERT_TRUE(rt->unmap(*r, kPages * kPage));
    }
    EXPECT_TRUE(server.keys(store->key_prefix() + "*").empty()) << "reads write nothing";
    write_through(*rt, store, 1);
    // One key per page, each exactly a page, under the store's namespace.
    const auto keys = server.keys(store->key_prefix() + "*");
    EXPECT_EQ(keys.size(), kPages);
    Reply len = RedisCluster::command(server.port(), "STRLEN %s", (store->key_prefix() + "7").c_str());
    ASSERT_TRUE(len);
    EXPECT_EQ(len->integer, (long long)kPage);
    const long long gets = get_calls(server.port());
    {
        // A runtime that never mapped the store: every page from Redis.
        auto other = Runtime::create();
        ASSERT_TRUE(other);
        char* q = map_rw(**other, store);
        ASSERT_NE(q, nullptr);
        EXPECT_EQ(first_bad(q, kPages, 1), -1);
        EXPECT_GE(get_calls(server.port()) - gets, (long long)kPages) << "the pages came from Redis";
    }
    char* p = map_rw(*rt, store);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(first_bad(p, kPages, 1), -1);
    // Written again, in place: the new bytes replace the old.
    fill(p, kPages, 2);
    ASSERT_TRUE(rt->unmap(p, kPages * kPage)); // unmap writes dirty pages back
    p = map_rw(*rt, store);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(first_bad(p, kPages, 2), -1);
    ASSERT_TRUE(rt->unmap(p, kPages * kPage));
    // discard() UNLINKs: those pages read zeros afterwards.
    EXPECT_EQ(store->discard(0, 8 * kPage), 0);
    EXPECT_EQ(server.keys(store->key_prefix() + "*").size(), kPages - 8);
    EXPECT_EQ(store->discard(1, kPage), -EINVAL);
    EXPECT_EQ(store->discard(0, (kPages + 1) * kPage), -EINVAL);
    // Read by a runtime of its own: one that mapped the store may still
    // hold its cache (released after the last unmap), whose pages win.
    auto fresh = Runtime::create();
    ASSERT_TRUE(fresh);
    rt = std::move(*fresh);
    p = map_rw(*rt, store);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p[0], 0);
    EXPECT_EQ(p[7 * kPage + 100], 0);
    EXPECT_EQ(static_cast<unsigned char>(p[8 * kPage]), byte_at(8, 0, 2));
    ASSERT_TRUE(rt->unmap(p, kPages * kPage));
    // The store's keys go with it.
    const std::string prefix = release(rt, store);
    EXPECT_TRUE(server.keys(prefix + "*").empty());
}

TEST(RedisStore, TwoStoresNeverShareKeys)
{
    REDIS_OR_SKIP(server);
    RUNTIME_OR_SKIP(rt);
    auto a = make_store(server.url(), kPages, "same");
    auto b = make_store(server.url(), kPages, "same");
    ASSERT_TRUE(a && b);
    EXPECT_NE(a->key_prefix(), b->key_prefix());
    write_through(*rt, a, 3);
    write_through(*rt, b, 4);
    char* pa = map_rw(*rt, a);
    char* pb = map_rw(*rt, b);
    ASSERT_TRUE(pa && pb);
    EXPECT_EQ(first_bad(pa, kPages, 3), -1);
    EXPECT_EQ(first_bad(pb, kPages, 4), -1);
}

TEST(RedisStore, RoundTripThroughAClusterIsByteExactWithKeysOnEveryMaster)
{
    CLUSTER_OR_SKIP(cluster);
    RUNTIME_OR_SKIP(rt);
    // A replica's address is a seed as good as any.
    int replica = 0;
    while (replica < RedisCluster::kNodes && cluster.is_master(replica))
        ++replica;
    ASSERT_LT(replica, RedisCluster::kNodes);
    auto store = make_store(cluster.url(replica));
    ASSERT_TRUE(store);
    EXPECT_TRUE(store->cluster());
    EXPECT_EQ(store->masters(), 3u);
    write_through(*rt, store, 5);
    const auto keys = cluster.keys(store->key_prefix() + "*");
    size_t total = 0;
    for (const auto& [node, k] : keys)
        total += k.size();
    EXPECT_EQ(total, kPages);
    EXPECT_EQ(keys.size(), 3u) << "pages spread over every master";
    char* p = map_rw(*rt, store);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(first_bad(p, kPages, 5), -1);
    ASSERT_TRUE(rt->unmap(p, kPages * kPage));
    const std::string prefix = release(rt, store);
    EXPECT_TRUE(cluster.keys(prefix + "*").empty());
}

TEST(RedisStore, WrongOrMissingPasswordIsEaccesAtCreationAndTheRightOneWorks)
{
    REDIS_OR_SKIP(server, "s3cret-pw");
    unsetenv("FAULTLINE_REDIS_PASSWORD");
    auto wrong = RedisStore::create({ .url = server.url("wrong@"), .size = kPage });
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().code(), EACCES);
    EXPECT_EQ(std::string(wrong.error().message()).find("wrong"), std::string::npos) << "the password is never shown";
    auto missing = RedisStore::create({ .url = server.url(), .size = kPage });
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), EACCES);
    EXPECT_NE(std::string(missing.error().message()).find("password"), std::string::npos) << missing.error().message();
    EXPECT_TRUE(RedisStore::create({ .url = server.url("s3cret-pw@"), .size = kPage }));
    setenv("FAULTLINE_REDIS_PASSWORD", "s3cret-pw", 1);
    EXPECT_TRUE(RedisStore::create({ .url = server.url(), .size = kPage }));
    unsetenv("FAULTLINE_REDIS_PASSWORD");
}

TEST(RedisStore, BadInputAndAnUnreachableAddressFailWithTheirErrno)
{
    auto refused = RedisStore::create({ .url = "redis://127.0.0.1:" + std::to_string(RedisServer::free_port()), .size = kPage });
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), ECONNREFUSED);
    for (const RedisStoreOptions& bad : std::vector<RedisStoreOptions> { { .url = "redis://127.0.0.1:1", .size = 0 },
             { .url = "redis://127.0.0.1:1", .size = kPage + 1 }, { .url = "http://127.0.0.1", .size = kPage },
             { .url = "redis://127.0.0.1/3", .size = kPage },
             { .url = "redis://127.0.0.1:1", .size = kPage, .name = "a:b" },
             { .url = "redis://127.0.0.1:1", .size = kPage, .name = std::string(65, 'x') } }) {
        auto r = RedisStore::create(bad);
        ASSERT_FALSE(r) << bad.url;
        EXPECT_EQ(r.error().code(), EINVAL) << bad.url << " " << r.error().message();
    }
}

TEST(RedisStore, AServerThatDoesNotAnswerIsEtimedoutAtCreation)
{
    REDIS_OR_SKIP(server);
    // Stopped: the kernel still accepts the connection, nobody answers PING.
    server.signal(SIGSTOP);
    const auto start = std::chrono::steady_clock::now();
    auto r = RedisStore::create({ .url = server.url(), .size = kPage }); // command_timeout_ms=500
    const auto took = std::chrono::steady_clock::now() - start;
    server.signal(SIGCONT);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ETIMEDOUT) << r.error().message();
    EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(RedisStore, AValueOfTheWrongSizeIsSigbusInTheFaultingThreadOnly)
{
    REDIS_OR_SKIP(server);
    RUNTIME_OR_SKIP(rt);
    auto store = make_store(server.url());
    ASSERT_TRUE(store);
    write_through_elsewhere(store, 6);
    const std::string key = store->key_prefix() + "3";
    Reply planted = RedisCluster::command(server.port(), "SET %s short", key.c_str());
    ASSERT_TRUE(planted && planted->type == REDIS_REPLY_STATUS);
    auto r = rt->map_store(store, { .length = kPages * kPage, .access = Access::Read, .readahead_min_pages = 1,
                                      .readahead_max_pages = 1 });
    ASSERT_TRUE(r);
    const char* p = static_cast<const char*>(*r);
    Watchdog dog("RedisStore wrong-size value", 30);
    EXPECT_EQ(touch(p + 3 * kPage), SIGBUS);
    // Another thread, other pages: served.
    std::atomic<int> other { -1 };
    std::thread t([&] { other = touch(p + 20 * kPage) == 0 && static_cast<unsigned char>(p[20 * kPage]) == byte_at(20, 0, 6); });
    t.join();
    EXPECT_EQ(other.load(), 1);
    EXPECT_EQ(static_cast<unsigned char>(p[40 * kPage + 9]), byte_at(40, 9, 6));
}

TEST(RedisStore, AWrittenPageWhoseKeyIsGoneIsSigbusNotZeros)
{
    REDIS_OR_SKIP(server);
    RUNTIME_OR_SKIP(rt);
    auto store = make_store(server.url());
    ASSERT_TRUE(store);
    write_through_elsewhere(store, 7);
    Reply flushed = RedisCluster::command(server.port(), "FLUSHALL");
    ASSERT_TRUE(flushed);
    auto r = rt->map_store(store, { .length = kPages * kPage, .access = Access::Read });
    ASSERT_TRUE(r);
    Watchdog dog("RedisStore flushed key", 30);
    EXPECT_EQ(touch(static_cast<const char*>(*r)), SIGBUS);
}

TEST(RedisStore, AKilledServerIsSigbusNeverAHangAndOtherMemoryIsServed)
{
    REDIS_OR_SKIP(server);
    RUNTIME_OR_SKIP(rt);
    auto store = make_store(server.url()); // command_timeout_ms=500
    ASSERT_TRUE(store);
    write_through_elsewhere(store, 8);
    auto r = rt->map_store(store, { .length = kPages * kPage, .access = Access::ReadWrite });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    EXPECT_EQ(static_cast<unsigned char>(p[0]), byte_at(0, 0, 8)); // read before the kill
    server.kill();
    Watchdog dog("RedisStore killed server", 30);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(touch(p + 30 * kPage), SIGBUS);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5)) << "a read must fail, not wait";
    // Another thread too; the page read before is still there.
    std::atomic<int> sig { -1 };
    std::thread([&] { sig = touch(p + 50 * kPage); }).join();
    EXPECT_EQ(sig.load(), SIGBUS);
    EXPECT_EQ(static_cast<unsigned char>(p[5]), byte_at(0, 5, 8));
    // Writing back fails with an error, not a hang; the page stays dirty.
    p[1] = 42;
    auto synced = rt->sync(p, kPage);
    EXPECT_FALSE(synced);
    auto fresh = rt->map_anonymous({ .size = 4 * kPage });
    ASSERT_TRUE(fresh);
    memset(*fresh, 9, 4 * kPage);
    EXPECT_EQ(static_cast<char*>(*fresh)[3 * kPage], 9);
}

TEST(RedisStore, KeysOfADeadProcessAreSweptByTheNextStore)
{
    REDIS_OR_SKIP(server);
    RUNTIME_OR_SKIP(probe);
    probe.reset();
    const pid_t child = fork();
    if (child == 0) {
        auto rt = Runtime::create();
        auto s = RedisStore::create({ .url = server.url(), .size = kPages * kPage, .name = "dead" });
        if (!rt || !s)
            _exit(2);
        auto m = (*rt)->map_store(*s, { .length = kPages * kPage, .access = Access::ReadWrite });
        if (!m)
            _exit(3);
        memset(*m, 1, kPages * kPage);
        _exit((*rt)->sync(*m, kPages * kPage) ? 0 : 4); // no destructor: the keys stay
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(server.keys("faultline:*:store:dead:*").size(), kPages);
    auto next = make_store(server.url());
    ASSERT_TRUE(next);
    EXPECT_TRUE(server.keys("faultline:*:store:dead:*").empty());
}

TEST(RedisStoreCApi, CreateMapRoundTripAndErrors)
{
    REDIS_OR_SKIP(server);
    faultline_runtime_t rt = 0;
    if (faultline_create(nullptr, &rt) != 0)
        GTEST_SKIP() << "userfaultfd unavailable: " << faultline_last_error();
    faultline_redis_store_t store = nullptr;
    EXPECT_EQ(faultline_redis_store_create(nullptr, kPage, nullptr, &store), -EINVAL);
    EXPECT_EQ(faultline_redis_store_create(server.url().c_str(), kPage, nullptr, nullptr), -EINVAL);
    EXPECT_EQ(faultline_redis_store_create(server.url().c_str(), kPage + 1, nullptr, &store), -EINVAL);
    const std::string nobody = "redis://127.0.0.1:" + std::to_string(RedisServer::free_port());
    EXPECT_EQ(faultline_redis_store_create(nobody.c_str(), kPage, nullptr, &store), -ECONNREFUSED);
    ASSERT_EQ(faultline_redis_store_create(server.url().c_str(), kPages * kPage, "c-api", &store), 0)
        << faultline_last_error();
    void* addr = nullptr;
    EXPECT_EQ(faultline_map_redis_store(rt, nullptr, 0, kPage, FAULTLINE_ACCESS_READ, nullptr, &addr), -EINVAL);
    EXPECT_EQ(faultline_map_redis_store(rt, store, 0, kPage, 0x100, nullptr, &addr), -EINVAL);
    const unsigned rw = FAULTLINE_ACCESS_READ | FAULTLINE_ACCESS_WRITE;
    ASSERT_EQ(faultline_map_redis_store(rt, store, 0, kPages * kPage, rw, "c", &addr), 0) << faultline_last_error();
    fill(static_cast<char*>(addr), kPages, 9);
    ASSERT_EQ(faultline_sync(rt, addr, kPages * kPage, FAULTLINE_SYNC), 0);
    ASSERT_EQ(faultline_unmap(rt, addr, kPages * kPage), 0);
    EXPECT_EQ(server.keys("faultline:*:store:c-api:*").size(), kPages);
    ASSERT_EQ(faultline_map_redis_store(rt, store, 0, kPages * kPage, FAULTLINE_ACCESS_READ, "c", &addr), 0);
    EXPECT_EQ(first_bad(static_cast<char*>(addr), kPages, 9), -1);
    EXPECT_EQ(faultline_redis_store_discard(nullptr, 0, kPage), -EINVAL);
    EXPECT_EQ(faultline_redis_store_discard(store, 1, kPage), -EINVAL);
    // The handle goes first, the region keeps the store; its keys go when
    // the region does.
    EXPECT_EQ(faultline_redis_store_destroy(store), 0);
    EXPECT_EQ(faultline_redis_store_destroy(nullptr), -EINVAL);
    EXPECT_EQ(static_cast<unsigned char>(static_cast<char*>(addr)[kPages * kPage - 1]), byte_at(kPages - 1, kPage - 1, 9));
    EXPECT_EQ(server.keys("faultline:*:store:c-api:*").size(), kPages);
    ASSERT_EQ(faultline_unmap(rt, addr, kPages * kPage), 0);
    EXPECT_EQ(faultline_destroy(rt), 0);
    EXPECT_TRUE(server.keys("faultline:*:store:c-api:*").empty());
}


// Writes on a cluster with replicas wait for one: a master killed after a
// sync loses no page once its replica is promoted, and the store, seeded at
// a node still alive, reads every page back.
TEST(RedisStore, AKilledMasterIsReplacedByItsReplicaAndNoStorePageIsLost)
{
    CLUSTER_OR_SKIP(cluster);
    RUNTIME_OR_SKIP(rt);
    auto store = make_store(cluster.url(0));
    ASSERT_TRUE(store);
    write_through(*rt, store, 10);
    const auto keys = cluster.keys(store->key_prefix() + "*");
    int victim = -1;
    for (const auto& [node, list] : keys)
        if (victim < 0 || list.size() > keys.at(victim).size())
            victim = node;
    ASSERT_GE(victim, 0);
    const int replica = cluster.replica_of(victim);
    ASSERT_GE(replica, 0);
    cluster.kill_node(victim);
    ASSERT_TRUE(cluster.promoted(replica, 20000)) << "the replica was not promoted";
    // A runtime with no cache of the store: every page from the cluster.
    auto fresh = Runtime::create();
    ASSERT_TRUE(fresh);
    Watchdog dog("RedisStore failover read", 60);
    char* p = map_rw(**fresh, store);
    ASSERT_NE(p, nullptr);
    long bad = -2;
    EXPECT_EQ(guarded_access([&] { bad = first_bad(p, kPages, 10); }), 0) << "a page was SIGBUS after the failover";
    EXPECT_EQ(bad, -1);
}

// examples/far_heap against a real cluster: it works a heap 4x its budget,
// every record reads back as written, and it says that pages were in Redis.
TEST(RedisFarHeapExample, RunsAgainstALocalClusterAndPrintsWhereItsPagesAre)
{
    CLUSTER_OR_SKIP(cluster);
    const std::string cmd = std::string(FAULTLINE_FAR_HEAP_EXAMPLE_PATH) + " 127.0.0.1:" + std::to_string(cluster.port(1))
        + " 4 2>&1";
    const auto [out, status] = run_command(cmd);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 1 && out.find("faultline: ") == 0
        && out.find("Redis") == std::string::npos)
        GTEST_SKIP() << "the example could not start a runtime here: " << out;
    printf("%s", out.c_str()); // what a user sees
    ASSERT_TRUE(WIFEXITED(status)) << out;
    EXPECT_EQ(WEXITSTATUS(status), 0) << out;
    EXPECT_NE(out.find("wrong records: 0"), std::string::npos) << out;
    // At the end most of the 16 MiB heap is in Redis, not resident.
    const auto done = out.find("done       heap 16 MiB: resident ");
    ASSERT_NE(done, std::string::npos) << out;
    const auto in_redis = out.find("in Redis ", done);
    ASSERT_NE(in_redis, std::string::npos) << out;
    EXPECT_GE(atoi(out.c_str() + in_redis + 9), 8) << out;
    EXPECT_EQ(out.find("swapped out 0,"), std::string::npos) << out;
    const std::string done_line = out.substr(done, out.find('\n', done) - done);
    EXPECT_NE(done_line.find("errors 0/0"), std::string::npos) << "no failed swap write or read: " << done_line;
    EXPECT_NE(out.find("runtime report: "), std::string::npos) << out;
    // Its runtime deleted its keys when the program ended.
    size_t left = 0;
    for (const auto& [node, keys] : cluster.keys("faultline:*"))
        left += keys.size();
    EXPECT_EQ(left, 0u);
}

} // namespace
} // namespace faultline::testing
