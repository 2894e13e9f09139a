// `faultline stat PID` (tools/faultline): the built tool run against live
// processes, its output and its exit statuses (docs/stat.md).
#include "fork_support.h"
#include "json_reader.h"
#include "test_support.h"

#include <chrono>
#include <fcntl.h>
#include <grp.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace faultline;
using faultline::testing::ForkedChild;
using faultline::testing::kPage;

namespace {

struct CliRun {
    int status = -1; // exit status; -1 if it did not exit normally in time
    std::string out;
    std::string err;
};

// Runs the built tool with `args`, as `uid` when given (root only).
CliRun run_cli(std::vector<std::string> args, std::optional<uid_t> uid = std::nullopt)
{
    CliRun run;
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
        return run;
    args.insert(args.begin(), FAULTLINE_CLI_PATH);
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        // Only async-signal-safe calls between fork and exec.
        dup2(out[1], 1);
        dup2(err[1], 2);
        if (uid && (setgroups(0, nullptr) != 0 || setresgid(*uid, *uid, *uid) != 0 || setresuid(*uid, *uid, *uid) != 0))
            _exit(120);
        execv(argv[0], argv.data());
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    pollfd p[2] = { { out[0], POLLIN, 0 }, { err[0], POLLIN, 0 } };
    std::string* sink[2] = { &run.out, &run.err };
    int open_pipes = 2;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (open_pipes > 0 && std::chrono::steady_clock::now() < deadline) {
        if (poll(p, 2, 1000) <= 0)
            continue;
        for (int i = 0; i < 2; ++i) {
            if (!p[i].revents)
                continue;
            char buf[4096];
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n > 0) {
                sink[i]->append(buf, size_t(n));
            } else {
                p[i].fd = -1;
                --open_pipes;
            }
        }
    }
    close(out[0]);
    close(err[0]);
    if (open_pipes > 0)
        kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

std::string describe(const CliRun& r) { return "exit " + std::to_string(r.status) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err; }

// A process with a runtime and one named region, alive until released.
// Exits with 77 when userfaultfd is not available to it.
struct LiveProcess {
    ForkedChild child { [](ForkedChild& c) {
        auto rt = Runtime::create();
        if (!rt)
            _exit(77);
        auto p = (*rt)->map_anonymous({ .size = 8 << 20, .name = "cli-region" });
        c.check(bool(p), "map failed");
        if (p)
            static_cast<char*>(*p)[kPage] = 1;
        c.ready();
        c.wait_for_parent();
    } };
};

#define START_LIVE_PROCESS_OR_SKIP(live)                                                                  \
    LiveProcess live;                                                                                      \
    ASSERT_TRUE(live.child.started());                                                                     \
    if (!live.child.wait_ready()) {                                                                        \
        auto outcome = live.child.reap();                                                                  \
        if (WIFEXITED(outcome.status) && WEXITSTATUS(outcome.status) == 77)                                \
            GTEST_SKIP() << "userfaultfd unavailable to the child";                                       \
        FAIL() << outcome.describe();                                                                      \
    }

} // namespace

TEST(StatCli, ShowsTheRegionsOfALiveProcess)
{
    START_LIVE_PROCESS_OR_SKIP(live);
    const std::string pid = std::to_string(live.child.pid());

    CliRun human = run_cli({ "stat", pid });
    EXPECT_EQ(human.status, 0) << describe(human);
    EXPECT_NE(human.out.find("runtime @faultline/" + pid + "/"), std::string::npos) << describe(human);
    EXPECT_NE(human.out.find("cli-region"), std::string::npos) << describe(human);
    EXPECT_NE(human.out.find("8.0 MiB"), std::string::npos) << describe(human);
    EXPECT_NE(human.out.find("(1 region;"), std::string::npos) << describe(human);

    CliRun json = run_cli({ "stat", "--json", pid });
    ASSERT_EQ(json.status, 0) << describe(json);
    ASSERT_FALSE(json.out.empty());
    auto report = cli::JsonValue::parse(json.out);
    ASSERT_TRUE(report) << report.error().message() << "\n" << json.out.substr(0, 400);
    const cli::JsonValue* regions = report->get("regions");
    ASSERT_TRUE(regions && regions->items().size() == 1) << json.out.substr(0, 400);
    EXPECT_EQ(regions->items()[0].get("name")->string(), "cli-region");
    EXPECT_EQ(cli::number_at(regions->items()[0], { "size" }), uint64_t(8) << 20);

    CliRun chosen = run_cli({ "stat", pid, "--runtime", "12345" });
    EXPECT_EQ(chosen.status, 1) << describe(chosen);
    EXPECT_NE(chosen.err.find("has no runtime number 12345"), std::string::npos) << describe(chosen);

    live.child.release();
    auto outcome = live.child.reap();
    EXPECT_TRUE(outcome.exited_zero()) << outcome.describe();
}

TEST(StatCli, AnotherUserIsRefused)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "needs root: the tool is run as another user (65534)";
    START_LIVE_PROCESS_OR_SKIP(live);
    CliRun refused = run_cli({ "stat", std::to_string(live.child.pid()) }, uid_t(65534));
    live.child.release();
    EXPECT_TRUE(live.child.reap().exited_zero());
    if (refused.status == 127 || refused.status == 120)
        GTEST_SKIP() << "uid 65534 cannot run the built tool (the build directory is not reachable to it)\n"
                     << describe(refused);
    EXPECT_EQ(refused.status, 3) << describe(refused);
    EXPECT_NE(refused.err.find("refused: uid 65534"), std::string::npos) << describe(refused);
    EXPECT_EQ(refused.out.find("cli-region"), std::string::npos) << describe(refused);
}

TEST(StatCli, ProcessWithoutARuntime)
{
    ForkedChild idle([](ForkedChild& c) {
        c.ready();
        c.wait_for_parent();
    });
    ASSERT_TRUE(idle.started());
    ASSERT_TRUE(idle.wait_ready());
    CliRun r = run_cli({ "stat", std::to_string(idle.pid()) });
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_NE(r.err.find("publishes no faultline statistics endpoint"), std::string::npos) << describe(r);
    idle.release();
    EXPECT_TRUE(idle.reap().exited_zero());
}

TEST(StatCli, NoSuchProcess)
{
    // A pid just freed: the child is reaped before the tool runs.
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    ASSERT_GT(gone, 0);
    waitpid(gone, nullptr, 0);
    CliRun r = run_cli({ "stat", std::to_string(gone) });
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_NE(r.err.find("no process"), std::string::npos) << describe(r);
}

TEST(StatCli, UsageErrors)
{
    for (const auto& args : std::vector<std::vector<std::string>> {
             {}, { "stat" }, { "stat", "abc" }, { "stat", "-5" }, { "stat", "12x" }, { "stat", "1", "2" },
             { "stat", "--bogus", "1" }, { "stat", "1", "--runtime" }, { "frobnicate" } }) {
        CliRun r = run_cli(args);
        std::string joined;
        for (auto& a : args)
            joined += a + " ";
        EXPECT_EQ(r.status, 2) << "faultline " << joined << "\n" << describe(r);
        EXPECT_NE(r.err.find("usage"), std::string::npos) << describe(r);
    }
    CliRun help = run_cli({ "--help" });
    EXPECT_EQ(help.status, 0);
    EXPECT_NE(help.out.find("faultline stat PID"), std::string::npos) << describe(help);
}
