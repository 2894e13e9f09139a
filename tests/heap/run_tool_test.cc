// `faultline run` (tools/faultline/run_command.cc): the program runs with the
// preloaded heap, its exit status and signals pass through unchanged, and
// bad input is refused before anything runs. The tool itself is started
// without the preload, as a user's shell would.
#include "spawn.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <string>
#include <sys/mount.h>
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

// --budget and --swap: garbage, zero and less than one eviction batch are
// usage errors; a swap directory that cannot take the file is refused by
// the tool, naming it, before anything runs; a budget where write-protect
// faults are hidden is refused by the preload.
TEST_F(FaultlineRun, BadBudgetOrSwapRunsNothing)
{
    for (const char* bad : { "--budget -- /bin/true", "--budget garbage -- /bin/true", "--budget 0 -- /bin/true",
             "--budget 12K -- /bin/true", "--budget 1Q -- /bin/true", "--swap /tmp -- /bin/true" }) {
        const Spawned s = run(bad);
        EXPECT_EQ(exit_code(s), 2) << bad << ": " << s.err;
        EXPECT_TRUE(s.out.empty()) << bad;
    }
    const Spawned missing = run("--budget 16M --swap /nonexistent-faultline-dir -- /bin/sh -c 'echo ran'");
    EXPECT_EQ(exit_code(missing), 2);
    EXPECT_TRUE(missing.out.empty());
    EXPECT_NE(missing.err.find("/nonexistent-faultline-dir"), std::string::npos) << missing.err;
    // A filesystem with no room at all (procfs reports none free).
    const Spawned full = run("--budget 16M --swap /proc -- /bin/sh -c 'echo ran'");
    EXPECT_EQ(exit_code(full), 2);
    EXPECT_TRUE(full.out.empty());
    EXPECT_NE(full.err.find("No space left"), std::string::npos) << full.err;
    if (geteuid() == 0) {
        char dir[] = "/tmp/faultline-run-ro-XXXXXX";
        ASSERT_TRUE(mkdtemp(dir));
        if (mount("tmpfs", dir, "tmpfs", MS_RDONLY, "size=1m") == 0) {
            const Spawned ro = run(std::string("--budget 16M --swap ") + dir + " -- /bin/sh -c 'echo ran'");
            umount(dir);
            EXPECT_EQ(exit_code(ro), 2);
            EXPECT_TRUE(ro.out.empty());
            EXPECT_NE(ro.err.find("Read-only file system"), std::string::npos) << ro.err;
        }
        rmdir(dir);
    }
    // Without write-protect faults a budget cannot be kept: the preload
    // refuses rather than run the program over budget.
    const Spawned no_wp = spawn_script("FAULTLINE_DISABLE=wp exec '" + tool() + "' run --budget 16M -- /bin/sh -c 'echo ran'", false);
    EXPECT_EQ(exit_code(no_wp), 1) << no_wp.err;
    EXPECT_TRUE(no_wp.out.empty());
    EXPECT_NE(no_wp.err.find("write-protect"), std::string::npos) << no_wp.err;
}

// A real program under a budget far below its heap gives the same output as
// a plain run, and says it swapped.
TEST_F(FaultlineRun, AProgramUnderABudgetGivesTheSameOutput)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        GTEST_SKIP() << "/usr/bin/python3 is not installed";
    if (const Spawned probe = run("--budget 1M -- /bin/true"); exit_code(probe) != 0)
        GTEST_SKIP() << "no budget here (it needs write-protect faults on anonymous memory): " << probe.err;
    const std::string script = "/usr/bin/python3 -c 'b = [bytearray(range(256)) * 64 for i in range(6000)]; "
                               "print(sum(x[i % 16384] for i, x in enumerate(b)), len(b))'";
    const Spawned plain = spawn_script(script, false);
    ASSERT_EQ(exit_code(plain), 0) << plain.err;
    char dir[] = "/tmp/faultline-run-swap-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir));
    const Spawned budgeted = run(std::string("--stats --budget 8M --swap ") + dir + " -- " + script);
    EXPECT_EQ(rmdir(dir), 0) << "the swap file is unlinked";
    ASSERT_EQ(exit_code(budgeted), 0) << budgeted.err;
    EXPECT_EQ(budgeted.out, plain.out);
    const size_t at = budgeted.err.find("swapped out ");
    ASSERT_NE(at, std::string::npos) << budgeted.err;
    EXPECT_NE(budgeted.err.compare(at, 14, "swapped out 0 "), 0) << "a 24 MiB heap under 8 MiB must swap: " << budgeted.err;
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
