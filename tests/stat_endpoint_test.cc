// The statistics endpoint (runtime/stat_endpoint.h, docs/stat.md): real
// abstract Unix sockets, real peer credentials, real fork.
#include "fork_support.h"
#include "json_reader.h"
#include "stat_test_support.h"
#include "test_support.h"

#include "runtime/stat_endpoint.h"

#include <faultline/stat_protocol.h>

#include <chrono>
#include <grp.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

using namespace faultline;
using faultline::cli::JsonValue;
using faultline::testing::ask;
using faultline::testing::connect_to;
using faultline::testing::ForkedChild;
using faultline::testing::kPage;
using faultline::testing::listening_endpoints;
using faultline::testing::Watchdog;

namespace {

using Clock = std::chrono::steady_clock;

// The region named `name` in a report, or nullptr.
const JsonValue* find_region(const JsonValue& report, std::string_view name)
{
    if (const JsonValue* regions = report.get("regions"))
        for (const JsonValue& r : regions->items())
            if (const JsonValue* n = r.get("name"); n && n->string() == name)
                return &r;
    return nullptr;
}

} // namespace

TEST(StatEndpoint, RepliesWithTheLiveRegions)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const std::string address = rt->stat_address();
    ASSERT_EQ(address.rfind("@faultline/" + std::to_string(getpid()) + "/", 0), 0u) << address;
    auto p = rt->map_anonymous({ .size = 8 << 20, .name = "stat-live" });
    ASSERT_TRUE(p);
    static_cast<char*>(*p)[0] = 1;

    std::string reply = ask(address);
    ASSERT_FALSE(reply.empty());
    ASSERT_EQ(reply.back(), '\n') << "one line per reply";
    reply.pop_back();
    auto report = JsonValue::parse(reply);
    ASSERT_TRUE(report) << report.error().message();
    const JsonValue* region = find_region(*report, "stat-live");
    ASSERT_NE(region, nullptr) << reply.substr(0, 400);
    EXPECT_EQ(cli::number_at(*region, { "size" }), uint64_t(8) << 20);
    EXPECT_EQ(cli::number_at(*region, { "address" }), uint64_t(uintptr_t(*p)));
    EXPECT_GE(cli::number_at(*region, { "resident" }), kPage);
    EXPECT_EQ(cli::at(*report, { "stat_endpoint", "socket" })->string(), address);

    // Live: a region mapped since shows in the next reply, and the reply
    // just sent is counted.
    auto q = rt->map_anonymous({ .size = kPage, .name = "stat-later" });
    ASSERT_TRUE(q);
    reply = ask(address);
    report = JsonValue::parse(std::string_view(reply).substr(0, reply.size() - 1));
    ASSERT_TRUE(report);
    EXPECT_NE(find_region(*report, "stat-later"), nullptr);
    EXPECT_EQ(cli::number_at(*report, { "stat_endpoint", "replies" }), 1u);
    EXPECT_EQ(rt->stats().stat_replies, 2u);
    EXPECT_EQ(rt->stats().stat_refused, 0u);
}

TEST(StatEndpoint, UnknownRequestIsAnError)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    std::string reply = ask(rt->stat_address(), "stat 2\n");
    EXPECT_EQ(reply.rfind("error:", 0), 0u) << reply;
    EXPECT_EQ(rt->stats().stat_replies, 0u);
}

TEST(StatEndpoint, TwoRuntimesHaveTheirOwnEndpoints)
{
    FAULTLINE_RUNTIME_OR_SKIP(first);
    FAULTLINE_RUNTIME_OR_SKIP(second, Config { .arena_size = size_t(1) << 30 });
    ASSERT_FALSE(first->stat_address().empty());
    ASSERT_FALSE(second->stat_address().empty());
    EXPECT_NE(first->stat_address(), second->stat_address());
    ASSERT_TRUE(first->map_anonymous({ .size = kPage, .name = "of-the-first" }));
    ASSERT_TRUE(second->map_anonymous({ .size = kPage, .name = "of-the-second" }));

    const std::string a = ask(first->stat_address());
    const std::string b = ask(second->stat_address());
    EXPECT_NE(a.find("\"of-the-first\""), std::string::npos);
    EXPECT_EQ(a.find("\"of-the-second\""), std::string::npos);
    EXPECT_NE(b.find("\"of-the-second\""), std::string::npos) << b.substr(0, 600);
    EXPECT_EQ(b.find("\"of-the-first\""), std::string::npos);
    const auto listed = listening_endpoints(getpid());
    EXPECT_EQ(std::count(listed.begin(), listed.end(), first->stat_address()), 1);
    EXPECT_EQ(std::count(listed.begin(), listed.end(), second->stat_address()), 1);

    // The name goes with its runtime.
    const std::string gone = first->stat_address();
    first.reset();
    EXPECT_EQ(connect_to(gone), -ECONNREFUSED);
    EXPECT_FALSE(ask(second->stat_address()).empty());
}

TEST(StatEndpoint, TakenNameIsSkipped)
{
    // The numbers are per process and handed out in order: squat the next
    // two names, as a process with our pid in another pid namespace could.
    unsigned next = 0;
    {
        FAULTLINE_RUNTIME_OR_SKIP(probe);
        const std::string a = probe->stat_address();
        ASSERT_FALSE(a.empty());
        next = unsigned(std::stoul(a.substr(a.rfind('/') + 1))) + 1;
    }
    int squatters[2];
    for (unsigned i = 0; i < 2; ++i) {
        squatters[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(squatters[i], 0);
        sockaddr_un sa;
        const socklen_t len = stat_protocol::make_address(stat_protocol::name(getpid(), next + i), sa);
        ASSERT_EQ(bind(squatters[i], reinterpret_cast<const sockaddr*>(&sa), len), 0) << strerror(errno);
    }
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    EXPECT_EQ(rt->stat_address(), stat_protocol::display(stat_protocol::name(getpid(), next + 2)));
    EXPECT_EQ(ask(rt->stat_address()).substr(0, 1), "{");
    for (int fd : squatters)
        close(fd);
}

TEST(StatEndpoint, AnotherUserIsRefused)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "needs root: the test becomes another user (65534) in a fork child with setresuid";
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const std::string address = rt->stat_address();
    ASSERT_FALSE(address.empty());
    ForkedChild child([&](ForkedChild& c) {
        // Groups first: they cannot be dropped once the uid is not root.
        c.check(setgroups(0, nullptr) == 0, "setgroups: %s", strerror(errno));
        c.check(setresgid(65534, 65534, 65534) == 0, "setresgid: %s", strerror(errno));
        c.check(setresuid(65534, 65534, 65534) == 0, "setresuid: %s", strerror(errno));
        const std::string reply = ask(address);
        c.check(reply.rfind("refused:", 0) == 0, "expected a refusal, got '%.200s'", reply.c_str());
        c.check(reply.find("{") == std::string::npos, "a refused peer must get no report");
    });
    ASSERT_TRUE(child.started());
    auto outcome = child.reap();
    ASSERT_TRUE(outcome.exited_zero()) << outcome.describe();
    EXPECT_EQ(rt->stats().stat_refused, 1u);
    EXPECT_EQ(rt->stats().stat_replies, 0u);
    // The refusal was counted and the endpoint still serves its own user.
    const std::string reply = ask(address);
    EXPECT_EQ(reply.substr(0, 1), "{") << reply.substr(0, 200);
    EXPECT_NE(reply.find("\"refused\":1"), std::string::npos);
}

TEST(StatEndpoint, DisabledEndpointPublishesNothing)
{
    const auto before = listening_endpoints(getpid());
    {
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .stat_endpoint = false });
        EXPECT_EQ(rt->stat_address(), "");
        EXPECT_FALSE(rt->config().stat_endpoint);
        EXPECT_EQ(listening_endpoints(getpid()), before);
        EXPECT_NE(rt->to_json().find("\"stat_endpoint\":{\"socket\":\"\""), std::string::npos);
    }
    {
        // The name FAULTLINE_DISABLE accepts, through Config::disable
        // (the same list), without a warning about an unknown feature.
        FAULTLINE_RUNTIME_OR_SKIP(rt, Config { .disable = "stat_endpoint" });
        EXPECT_EQ(rt->stat_address(), "");
        EXPECT_FALSE(rt->config().stat_endpoint);
        EXPECT_EQ(listening_endpoints(getpid()), before);
    }
}

TEST(StatEndpoint, ForkChildPublishesNothingAndDoesNotKeepTheName)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const std::string address = rt->stat_address();
    ASSERT_FALSE(address.empty());
    const pid_t parent = getpid();
    ForkedChild child([&](ForkedChild& c) {
        c.check(rt->stat_address().empty(), "the child's copy claims %s", rt->stat_address().c_str());
        c.check(listening_endpoints(getpid()).empty(), "the child publishes an endpoint");
        // The name still leads to the parent, which still answers.
        const int fd = connect_to(address);
        c.check(fd >= 0, "cannot reach the parent's endpoint: %s", strerror(-fd));
        if (fd >= 0) {
            ucred peer {};
            socklen_t len = sizeof peer;
            c.check(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 && peer.pid == parent,
                "the endpoint is served by %d, not the parent %d", int(peer.pid), int(parent));
            close(fd);
        }
        c.ready();
        c.wait_for_parent();
    });
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(child.wait_ready()) << child.reap().describe();
    // The child lives on; its copies of the descriptors were closed at
    // fork, so the name dies with the parent's runtime.
    rt.reset();
    EXPECT_EQ(connect_to(address), -ECONNREFUSED);
    child.release();
    auto outcome = child.reap();
    EXPECT_TRUE(outcome.exited_zero()) << outcome.describe();
}

TEST(StatEndpoint, ClientThatNeverReadsDoesNotBlockDestruction)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    // A report larger than any socket buffer, so that the reply is stuck
    // half sent when the runtime is destroyed.
    const std::string name(60, 'r');
    for (int i = 0; i < 4000; ++i)
        ASSERT_TRUE(rt->map_anonymous({ .size = kPage, .name = name }));
    const int fd = connect_to(rt->stat_address());
    ASSERT_GE(fd, 0) << strerror(-fd);
    ASSERT_TRUE(faultline::testing::send_request(fd));
    // Wait until the reply has started to arrive, then never read.
    pollfd p { fd, POLLIN, 0 };
    int ready;
    while ((ready = poll(&p, 1, 20000)) < 0 && errno == EINTR) {
    }
    ASSERT_EQ(ready, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));

    Watchdog watchdog("destroying a runtime with a stuck stat client", 60);
    const auto start = Clock::now();
    rt.reset();
    const auto took = Clock::now() - start;
    // Well under the endpoint's reply timeout (5 s): the stop was seen.
    EXPECT_LT(took, std::chrono::seconds(3));
    const std::string received = faultline::testing::read_all(fd);
    close(fd);
    EXPECT_FALSE(received.empty());
    EXPECT_EQ(received.find('\n'), std::string::npos) << "the reply should have been cut by the destruction";
}

// The endpoint class on its own, with short timeouts and a report of our
// making.
TEST(StatEndpoint, SlowClientsDoNotHoldUpOthers)
{
    const std::string big = "{\"pad\":\"" + std::string(size_t(8) << 20, 'x') + "\"}";
    auto endpoint = StatEndpoint::open([&] { return big; },
        StatEndpoint::Options { .request_timeout = std::chrono::milliseconds(200),
            .reply_timeout = std::chrono::milliseconds(300) });
    ASSERT_TRUE(endpoint) << endpoint.error().message();
    ASSERT_TRUE((*endpoint)->start());
    const std::string address = (*endpoint)->address();

    // One client that never sends its request, one that never reads.
    const int silent = connect_to(address);
    ASSERT_GE(silent, 0);
    const int deaf = connect_to(address);
    ASSERT_GE(deaf, 0);
    ASSERT_TRUE(faultline::testing::send_request(deaf));

    Watchdog watchdog("a stat client behind slow ones", 60);
    const auto start = Clock::now();
    const std::string reply = ask(address);
    const auto took = Clock::now() - start;
    EXPECT_EQ(reply, big + "\n");
    EXPECT_LT(took, std::chrono::seconds(10));
    // The deaf client's reply was abandoned; only the full one counts.
    EXPECT_EQ((*endpoint)->replies(), 1u);
    close(silent);
    close(deaf);
}
