// `faultline run` (tools/faultline/run_command.cc): the program runs with the
// preloaded heap, its exit status and signals pass through unchanged, and
// bad input is refused before anything runs. The tool itself is started
// without the preload, as a user's shell would.
#include "spawn.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace faultline::heap_testing {
namespace {

std::string tool()
{
    const char* path = getenv("FAULTLINE_TEST_CLI");
    return path ? path : "";
}

class FaultlineRun : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (tool().empty() || access(tool().c_str(), X_OK) != 0)
            GTEST_SKIP() << "FAULTLINE_TEST_CLI does not name the built faultline tool (tests/meson.build sets it)";
    }
    // exec: the shell is replaced by the tool, which is replaced by the
    // program, so the status the test sees is the program's own.
    Spawned run(const std::string& args) { return spawn_script("exec '" + tool() + "' run " + args, false); }
    static int exit_code(const Spawned& s) { return WIFEXITED(s.status) ? WEXITSTATUS(s.status) : -1; }
};

TEST_F(FaultlineRun, ProgramRunsWithThePreloadedHeap)
{
    const Spawned s = run("-- /bin/sh -c 'echo \"$LD_PRELOAD\"'");
    EXPECT_EQ(exit_code(s), 0) << s.err;
    EXPECT_NE(s.out.find("libfaultline_malloc.so"), std::string::npos) << s.out;
    if (access("/usr/bin/python3", X_OK) == 0) {
        const Spawned p = run("/usr/bin/python3 -c 'print(sum(i * i for i in range(100000)))'");
        EXPECT_EQ(exit_code(p), 0) << p.err;
        EXPECT_EQ(p.out, "333328333350000\n");
    }
}

TEST_F(FaultlineRun, ExitStatusAndSignalsPassThrough)
{
    EXPECT_EQ(exit_code(run("-- /bin/sh -c 'exit 7'")), 7);
    EXPECT_EQ(exit_code(run("-- /bin/sh -c 'exit 0'")), 0);
    const Spawned killed = run("-- /bin/sh -c 'kill -TERM $$'");
    ASSERT_TRUE(WIFSIGNALED(killed.status)) << killed.status;
    EXPECT_EQ(WTERMSIG(killed.status), SIGTERM);
}

TEST_F(FaultlineRun, StatsAreTheProgramsOnly)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        GTEST_SKIP() << "/usr/bin/python3 is not installed";
    // The program starts two more processes (also preloaded): one line, for
    // the program faultline run started. (Statistics are printed at a normal
    // exit: python3 exits through exit(3).)
    const Spawned s = run("--stats -- /usr/bin/python3 -c 'import subprocess; subprocess.run([\"/bin/true\"]); "
                          "subprocess.run([\"/bin/true\"]); print(\"done\")'");
    EXPECT_EQ(exit_code(s), 0) << s.err;
    EXPECT_EQ(s.out, "done\n");
    size_t lines = 0;
    for (size_t at = 0; (at = s.err.find("faultline heap [pid", at)) != std::string::npos; ++at)
        ++lines;
    EXPECT_EQ(lines, 1u) << s.err;
    EXPECT_NE(s.err.find("peak RSS"), std::string::npos) << s.err;
    EXPECT_NE(s.err.find("pages installed"), std::string::npos) << s.err;
}

TEST_F(FaultlineRun, BadInputRunsNothing)
{
    EXPECT_EQ(exit_code(run("")), 2);                      // no command
    EXPECT_EQ(exit_code(run("--")), 2);
    EXPECT_EQ(exit_code(run("--frobnicate -- /bin/true")), 2);
    EXPECT_EQ(exit_code(run("--heap-size -- /bin/true")), 2);
    EXPECT_EQ(exit_code(run("--heap-size garbage -- /bin/true")), 2);
    EXPECT_EQ(exit_code(run("--heap-size 0 -- /bin/true")), 2);
    EXPECT_EQ(exit_code(run("--heap-size 12Q -- /bin/true")), 2);
    const Spawned missing = run("-- faultline-no-such-command-here");
    EXPECT_EQ(exit_code(missing), 127);
    EXPECT_NE(missing.err.find("command not found"), std::string::npos);
    // A statically linked program: LD_PRELOAD could not apply, so it is not
    // run at all (ldconfig is statically linked on Debian).
    if (access("/sbin/ldconfig", X_OK) == 0) {
        const Spawned s = run("-- /sbin/ldconfig -p");
        EXPECT_EQ(exit_code(s), 126);
        EXPECT_TRUE(s.out.empty()) << "the static program ran: " << s.out.substr(0, 200);
        EXPECT_NE(s.err.find("statically linked"), std::string::npos) << s.err;
    }
    // A file that is neither a program nor a script.
    char path[] = "/tmp/faultline-run-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "not a program\n", 14), 14);
    close(fd);
    chmod(path, 0755);
    EXPECT_EQ(exit_code(run(std::string("-- ") + path)), 126);
    unlink(path);
    // --heap-size too small for the heap: the preload refuses inside the
    // program, before it runs.
    const Spawned small = run("--heap-size 1M -- /bin/sh -c 'echo ran'");
    EXPECT_EQ(exit_code(small), 1);
    EXPECT_TRUE(small.out.empty());
    EXPECT_NE(small.err.find("FAULTLINE_HEAP_SIZE"), std::string::npos) << small.err;
}

// `faultline stat` reads a live preloaded program (docs/stat.md): the heap's
// runtime publishes its endpoint like any other, and the table shows the
// heap region.
TEST_F(FaultlineRun, StatReadsALivePreloadedProgram)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        GTEST_SKIP() << "/usr/bin/python3 is not installed";
    // The program prints "up" and then waits for its stdin to close.
    int out[2], in[2];
    ASSERT_EQ(pipe(out), 0);
    ASSERT_EQ(pipe(in), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(in[0], STDIN_FILENO);
        close(out[0]);
        close(out[1]);
        close(in[0]);
        close(in[1]);
        unsetenv("LD_PRELOAD");
        const std::string t = tool();
        execl(t.c_str(), "faultline", "run", "--", "/usr/bin/python3", "-c",
            "import sys, time\nprint('up', flush=True)\nsys.stdin.read()", nullptr);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    std::string line;
    for (char c = 0; line.size() < 8 && read(out[0], &c, 1) == 1 && c != '\n';)
        line += c;
    ASSERT_EQ(line, "up") << "the preloaded program did not start";
    const Spawned stat = spawn_script("'" + tool() + "' stat " + std::to_string(child), false);
    const Spawned json = spawn_script("'" + tool() + "' stat " + std::to_string(child) + " --json", false);
    close(in[1]); // the program's stdin ends: it exits
    int status = 0;
    waitpid(child, &status, 0);
    close(out[0]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(exit_code(stat), 0) << stat.err;
    EXPECT_NE(stat.out.find("faultline-heap"), std::string::npos) << stat.out;
    EXPECT_EQ(exit_code(json), 0) << json.err;
    EXPECT_NE(json.out.find("\"faultline-heap\""), std::string::npos) << json.out.substr(0, 400);
}

} // namespace
} // namespace faultline::heap_testing
