// Far memory on Redis (issue 15, first slice): the swap pager with a
// redis:// swap_path against a real redis-server each test starts on a free
// loopback port in a temporary directory (no persistence) and stops after.
// A region 4x the budget comes back byte-exact through Redis; its keys are
// in the runtime's namespace while swapped and gone after unmap; a wrong or
// missing password and an unreachable server fail Runtime::create with a
// clear errno; a server killed while pages are swapped out is SIGBUS in the
// faulting thread (never zeros, never a hang) and other memory is still
// served; a full server (maxmemory, OOM) keeps the pages resident; a
// stalled server (SIGSTOP) times out to SIGBUS and the runtime reconnects
// once it answers; a value of the wrong size is SIGBUS; a start deletes the
// keys of this host's dead processes only; a fork child reads swapped
// pages; `faultline run --swap redis://` runs a program's heap through
// Redis. Skipped, with the reason, where redis-server is not installed.
#include "runtime/redis_swap_target.h"
#include "support/guarded_access.h"
#include "support/redis_servers.h"
#include "support/swap_pages.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::testing {
namespace {

constexpr unsigned kBatch = kSwapBatch;

bool page_ok(const char* base, size_t page, unsigned gen)
{
    for (size_t at = 0; at < kPage; ++at)
        if (static_cast<unsigned char>(base[page * kPage + at]) != pattern(page, at, gen))
            return false;
    return true;
}

bool wait_for(const std::function<bool()>& done)
{
    for (int i = 0; i < 1500; ++i) {
        if (done())
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return done();
}

std::string own_namespace()
{
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    return std::string("faultline:") + host + ":" + std::to_string(getpid()) + ":";
}

TEST(RedisUrl, PartsDefaultsAndRefusals)
{
    auto e = RedisEndpoint::parse("redis://alice:p%40ss%3Aword@cache.example:6380/?connect_timeout_ms=250&command_timeout_ms=75");
    ASSERT_TRUE(e) << e.error().message();
    EXPECT_EQ(e->host, "cache.example");
    EXPECT_EQ(e->port, 6380);
    EXPECT_EQ(e->user, "alice");
    EXPECT_EQ(e->password, "p@ss:word");
    EXPECT_EQ(e->connect_timeout_ms, 250u);
    EXPECT_EQ(e->command_timeout_ms, 75u);

    unsetenv("FAULTLINE_REDIS_PASSWORD");
    e = RedisEndpoint::parse("redis://[::1]");
    ASSERT_TRUE(e) << e.error().message();
    EXPECT_EQ(e->host, "::1");
    EXPECT_EQ(e->port, 6379);
    EXPECT_EQ(e->password, "");
    EXPECT_EQ(e->connect_timeout_ms, 1000u);

    e = RedisEndpoint::parse("redis://secret@h");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->user, "");
    EXPECT_EQ(e->password, "secret");

    setenv("FAULTLINE_REDIS_PASSWORD", "from-env", 1);
    e = RedisEndpoint::parse("redis://h:1");
    unsetenv("FAULTLINE_REDIS_PASSWORD");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->password, "from-env");

    for (const char* bad : { "redis://", "redis://h:0", "redis://h:70000", "redis://h:x", "redis://h/1",
             "redis://h?colour=blue", "redis://h?command_timeout_ms=0", "redis://[::1", "http://h" }) {
        auto r = RedisEndpoint::parse(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().code(), EINVAL) << bad;
    }
}

TEST(RedisSwap, FourTimesTheBudgetComesBackByteExactAndItsKeysGoAfterUnmap)
{
    REDIS_OR_SKIP(server);
    UFFD_OR_SKIP();
    const size_t budget = 64;
    auto created = Runtime::create(redis_config(budget, server.url()));
    ASSERT_TRUE(created) << created.error().message();
    auto rt = std::move(*created);
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 1);
    ASSERT_TRUE(wait_for([&] { return rt->stats().swapped_out >= pages - budget - kBatch; }));
    // Every swapped page is a key, all in this runtime's namespace.
    const auto swapped = server.keys("faultline:*");
    EXPECT_GE(swapped.size(), pages - budget - kBatch);
    for (const auto& k : swapped)
        ASSERT_EQ(k.rfind(own_namespace(), 0), 0u) << k;
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 1)) << "page " << i;
    const auto s = rt->stats();
    EXPECT_GT(s.swapped_in, 0u);
    EXPECT_EQ(s.swap_read_errors, 0u);
    EXPECT_EQ(s.swap_write_errors, 0u);
    ASSERT_TRUE(rt->unmap(p, pages * kPage));
    EXPECT_TRUE(wait_for([&] { return server.keys("faultline:*").empty(); }))
        << server.keys("faultline:*").size() << " keys left after unmap";
}

TEST(RedisSwap, AWrongOrMissingPasswordOrNoServerFailsCreate)
{
    REDIS_OR_SKIP(server, "s3cret");
    UFFD_OR_SKIP();
    auto wrong = Runtime::create(redis_config(64, server.url(":hunter2x@")));
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().code(), EACCES) << wrong.error().message();
    EXPECT_NE(std::string(wrong.error().message()).find("password"), std::string::npos) << wrong.error().message();
    EXPECT_EQ(std::string(wrong.error().message()).find("hunter2x"), std::string::npos) << "the password is never shown";

    auto missing = Runtime::create(redis_config(64, server.url()));
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), EACCES) << missing.error().message();

    auto right = Runtime::create(redis_config(64, server.url(":s3cret@")));
    EXPECT_TRUE(right) << right.error().message();

    // The password from the environment when the URL has none.
    setenv("FAULTLINE_REDIS_PASSWORD", "s3cret", 1);
    auto from_env = Runtime::create(redis_config(64, server.url()));
    unsetenv("FAULTLINE_REDIS_PASSWORD");
    EXPECT_TRUE(from_env) << from_env.error().message();

    auto nobody = Runtime::create(redis_config(64, "redis://127.0.0.1:" + std::to_string(RedisServer::free_port())));
    ASSERT_FALSE(nobody);
    EXPECT_EQ(nobody.error().code(), ECONNREFUSED) << nobody.error().message();

    auto bad = Runtime::create(redis_config(64, server.url() + "&colour=blue"));
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), EINVAL) << bad.error().message();
}

TEST(RedisSwap, AKilledServerIsSigbusOnSwappedPagesAndOtherMemoryIsStillServed)
{
    REDIS_OR_SKIP(server);
    UFFD_OR_SKIP();
    const size_t budget = 64;
    auto created = Runtime::create(redis_config(budget, server.url()));
    ASSERT_TRUE(created) << created.error().message();
    auto rt = std::move(*created);
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 2);
    // Page 0 was written first: under FIFO it is long swapped out.
    ASSERT_TRUE(wait_for([&] { return rt->stats().swapped_out >= pages - budget - kBatch; }));
    server.kill();
    const auto start = std::chrono::steady_clock::now();
    const int sig = guarded_access([&] { (void)*reinterpret_cast<volatile const char*>(p); });
    EXPECT_EQ(sig, SIGBUS);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3)) << "a read must fail, not wait";
    EXPECT_GT(rt->stats().swap_read_errors, 0u);
    // Memory the server never held is still served (its evictions fail and
    // keep the pages resident: over the budget, never lost).
    auto fresh = rt->map_anonymous({ .size = 8 * kPage });
    ASSERT_TRUE(fresh);
    char* q = static_cast<char*>(*fresh);
    for (size_t i = 0; i < 8; ++i)
        fill_page(q, i, 3);
    for (size_t i = 0; i < 8; ++i)
        ASSERT_TRUE(page_ok(q, i, 3)) << "page " << i;
    // The last pages written are still resident: readable as written.
    for (size_t i = pages - 8; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 2)) << "page " << i;
}

TEST(RedisSwap, AStalledServerTimesOutToSigbusAndTheRuntimeReconnects)
{
    REDIS_OR_SKIP(server);
    UFFD_OR_SKIP();
    const size_t budget = 64;
    auto created = Runtime::create(redis_config(budget, server.url())); // command_timeout_ms=500
    ASSERT_TRUE(created) << created.error().message();
    auto rt = std::move(*created);
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 5);
    ASSERT_TRUE(wait_for([&] { return rt->stats().swapped_out >= pages - budget - kBatch; }));
    server.signal(SIGSTOP); // alive, connected, silent
    const auto start = std::chrono::steady_clock::now();
    const int sig = guarded_access([&] { (void)*reinterpret_cast<volatile const char*>(p); });
    const auto waited = std::chrono::steady_clock::now() - start;
    server.signal(SIGCONT);
    EXPECT_EQ(sig, SIGBUS);
    EXPECT_LT(waited, std::chrono::seconds(3)) << "the command timeout bounds a read";
    // The server answers again: the next reads reconnect and come back
    // byte-exact (page 0, whose read failed, may stay poisoned).
    for (size_t i = 1; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 5)) << "page " << i;
}

TEST(RedisSwap, AValueOfTheWrongSizeIsCorruptionAndSigbus)
{
    REDIS_OR_SKIP(server);
    UFFD_OR_SKIP();
    const size_t budget = 64;
    auto created = Runtime::create(redis_config(budget, server.url()));
    ASSERT_TRUE(created) << created.error().message();
    auto rt = std::move(*created);
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 6);
    ASSERT_TRUE(wait_for([&] { return rt->stats().swapped_out >= pages - budget - kBatch; }));
    // Someone else wrote the keys: every swapped page is now 5 bytes long.
    redisContext* c = redisConnect("127.0.0.1", server.port());
    ASSERT_TRUE(c && !c->err);
    for (const auto& k : server.keys(own_namespace() + "*"))
        freeReplyObject(redisCommand(c, "SET %b short", k.data(), k.size()));
    redisFree(c);
    const int sig = guarded_access([&] { (void)*reinterpret_cast<volatile const char*>(p); });
    EXPECT_EQ(sig, SIGBUS) << "a short value must never be served as a page";
    EXPECT_GT(rt->stats().swap_read_errors, 0u);
}

TEST(RedisSwap, AFullServerRefusesWritesAndThePagesStayResident)
{
    // Room for a few dozen pages, then OOM errors on SET (noeviction: a
    // server that dropped swapped pages would lose data).
    REDIS_OR_SKIP(server, "", { "--maxmemory", "1200kb", "--maxmemory-policy", "noeviction" });
    UFFD_OR_SKIP();
    const size_t budget = 64;
    auto created = Runtime::create(redis_config(budget, server.url()));
    ASSERT_TRUE(created) << created.error().message();
    auto rt = std::move(*created);
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 7);
    ASSERT_TRUE(wait_for([&] { return rt->stats().swap_write_errors > 0; }));
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 7)) << "page " << i;
    EXPECT_EQ(rt->stats().swap_read_errors, 0u);
    // Room again (an operator raised the limit, other keys expired): the
    // server is tried again within a second, and swapping goes on without
    // any slot of ours having been freed.
    // (Pages written to the server, not dropped clean: a page read back
    // clean can go again without a write, full or not.)
    auto written = [&] { return rt->stats().swapped_out - rt->stats().swap_clean_drops; };
    const uint64_t before = written();
    redisContext* c = redisConnect("127.0.0.1", server.port());
    ASSERT_TRUE(c && !c->err);
    auto* reply = static_cast<redisReply*>(redisCommand(c, "CONFIG SET maxmemory 0"));
    ASSERT_TRUE(reply && reply->type == REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    redisFree(c);
    ASSERT_TRUE(wait_for([&] { return written() > before; })) << "the full server was never tried again";
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 7)) << "page " << i;
}

TEST(RedisSwap, StartSweepsTheKeysOfDeadProcessesOnThisHostOnly)
{
    REDIS_OR_SKIP(server);
    UFFD_OR_SKIP();
    const pid_t gone = fork();
    ASSERT_GE(gone, 0);
    if (gone == 0)
        _exit(0);
    ASSERT_EQ(waitpid(gone, nullptr, 0), gone);
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    const std::string dead = std::string("faultline:") + host + ":" + std::to_string(gone) + ":00ff:7";
    const std::string alive = own_namespace() + "00ee:7"; // a live pid: another runtime of a running process
    const std::string elsewhere = "faultline:some-other-host:" + std::to_string(gone) + ":00dd:7";
    redisContext* c = redisConnect("127.0.0.1", server.port());
    ASSERT_TRUE(c && !c->err);
    for (const auto& k : { dead, alive, elsewhere })
        freeReplyObject(redisCommand(c, "SET %s x", k.c_str()));
    redisFree(c);
    auto rt = Runtime::create(redis_config(64, server.url()));
    ASSERT_TRUE(rt) << rt.error().message();
    EXPECT_TRUE(server.keys(dead).empty());
    EXPECT_EQ(server.keys(alive).size(), 1u);
    EXPECT_EQ(server.keys(elsewhere).size(), 1u);
}

// The output of a shell command line, and its exit status.
std::pair<std::string, int> shell(const std::string& line)
{
    std::string out;
    FILE* f = popen((line + " 2>&1").c_str(), "r");
    if (!f)
        return { "popen failed", -1 };
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        out.append(buf, n);
    const int status = pclose(f);
    return { out, WIFEXITED(status) ? WEXITSTATUS(status) : -1 };
}

TEST(RedisSwap, FaultlineRunSwapsAProgramsHeapToRedis)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "the preloaded heap is not built under the sanitizers (tests/meson.build)";
#endif
    REDIS_OR_SKIP(server);
    UFFD_OR_SKIP();
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "python3 is not installed (the program run under the budget)";
    // 8 MB of heap under a 1 MB budget: most of it lives in Redis.
    const std::string program =
        "python3 -c 'import hashlib; b=[bytes([i % 251]) * 4096 for i in range(2000)]; "
        "print(hashlib.sha1(b\"\".join(b)).hexdigest())'";
    const auto plain = shell(program);
    ASSERT_EQ(plain.second, 0) << plain.first;
    const auto run = shell(std::string(FAULTLINE_CLI_PATH) + " run --stats --budget 1M --swap " + server.url()
        + " -- " + program);
    ASSERT_EQ(run.second, 0) << run.first;
    EXPECT_NE(run.first.find(plain.first), std::string::npos) << run.first;
    EXPECT_NE(run.first.find("swapped out"), std::string::npos) << run.first;

    const auto refused = shell(std::string(FAULTLINE_CLI_PATH) + " run --budget 1M --swap redis://127.0.0.1:"
        + std::to_string(RedisServer::free_port()) + " -- true");
    EXPECT_NE(refused.second, 0);
    EXPECT_NE(refused.first.find("Connection refused"), std::string::npos) << refused.first;
}

TEST(RedisSwap, AForkChildReadsSwappedPagesAndLeavesTheParentsKeys)
{
    REDIS_OR_SKIP(server);
    UFFD_OR_SKIP();
    const size_t budget = 64;
    auto created = Runtime::create(redis_config(budget, server.url()));
    ASSERT_TRUE(created) << created.error().message();
    auto rt = std::move(*created);
    const size_t pages = 4 * budget;
    auto r = rt->map_anonymous({ .size = pages * kPage });
    ASSERT_TRUE(r);
    char* p = static_cast<char*>(*r);
    for (size_t i = 0; i < pages; ++i)
        fill_page(p, i, 4);
    ASSERT_TRUE(wait_for([&] { return rt->stats().swapped_out > 0; }));
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        for (size_t i = 0; i < pages; ++i)
            if (!page_ok(p, i, 4))
                _exit(10);
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10: a swapped page read wrong in the child";
    // The parent swaps out again and reads everything back.
    ASSERT_TRUE(wait_for([&] { return !server.keys(own_namespace() + "*").empty(); }));
    for (size_t i = 0; i < pages; ++i)
        ASSERT_TRUE(page_ok(p, i, 4)) << "page " << i;
    EXPECT_EQ(rt->stats().swap_read_errors, 0u);
}

} // namespace
} // namespace faultline::testing
