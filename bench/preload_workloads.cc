#include "preload_workloads.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace bench {

namespace {

// These cases time whole processes, not a region: both sides get one
// page nobody touches, so compare() can run them like every other case.
class NoRegion final : public Mapper {
public:
    explicit NoRegion(std::string name) : name_(std::move(name)) { }
    std::string name() const override { return name_; }
    char* map(size_t, bool) override { return page_; }
    void unmap(char*, size_t) override { }

private:
    std::string name_;
    alignas(4096) char page_[4096] {};
};

struct Scratch {
    std::string dir;
    std::string expected; // the first plain run's output
    ~Scratch()
    {
        if (!dir.empty())
            (void)!system(("rm -rf '" + dir + "'").c_str());
    }
};

// Runs `script` with /bin/sh in `dir`; returns its stdout, fails on a
// non-zero status.
std::string run_script(const std::string& dir, const std::string& script, bool preload)
{
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0)
            env.emplace_back(*e);
    if (preload)
        env.push_back("LD_PRELOAD=" + preload_library());
    std::vector<char*> envp;
    for (auto& e : env)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0)
        fail("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::string body = "cd '" + dir + "' && " + script;
    char* argv[] = { const_cast<char*>("sh"), const_cast<char*>("-c"), body.data(), nullptr };
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fail("cannot start /bin/sh");
    }
    std::string out;
    char buffer[65536];
    for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;)
        out.append(buffer, size_t(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("'" + script + "' failed" + (preload ? " under the preloaded heap" : ""));
    return out;
}

struct Script {
    std::string prepare; // untimed, once
    std::string run;     // timed
};

Script script_for(Program program, unsigned scale)
{
    const std::string n = std::to_string(scale);
    switch (program) {
    case Program::Python:
        return { "true",
            "/usr/bin/python3 -c 'import json, collections, hashlib\n"
            "n = 600000 // " + n + "\n"
            "d = {i: str(i) * (i % 40) for i in range(n)}\n"
            "c = collections.Counter(len(v) for v in d.values())\n"
            "l = sorted(d.values(), key=len)\n"
            "print(len(l), hashlib.sha256(json.dumps(sorted(c.items())).encode()).hexdigest())'" };
    case Program::Sqlite:
        return { "true",
            "rm -f t.db && sqlite3 t.db \"CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT, g INTEGER);"
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000 / " + n + ")"
            " INSERT INTO t SELECT i, printf('%08x', (i * 2654435761) % 4294967296), i % 97 FROM n;"
            "CREATE INDEX tv ON t(v); SELECT g, count(*), min(v) FROM t GROUP BY g ORDER BY g LIMIT 3;\"" };
    case Program::Xz:
        return { "seq 1 $((1000000 / " + n + ")) > in",
            "xz -T1 -6 -c in > in.xz && xz -dc in.xz | cmp - in && sha256sum in.xz | cut -c1-64" };
    case Program::Sort:
        return { "awk 'BEGIN { srand(7); for (i = 0; i < 2000000 / " + n + "; i++) printf \"%08d %s\\n\", int(rand() * 1e8), i }' > in",
            "sort -S 256M in | sha256sum | cut -c1-64" };
    }
    return {};
}

std::string program_name(Program p)
{
    switch (p) {
    case Program::Python: return "python3";
    case Program::Sqlite: return "sqlite3";
    case Program::Xz: return "xz";
    case Program::Sort: return "sort";
    }
    return "?";
}

} // namespace

std::string preload_library()
{
#ifdef FAULTLINE_MALLOC_PATH
    if (access(FAULTLINE_MALLOC_PATH, R_OK) == 0)
        return FAULTLINE_MALLOC_PATH;
#endif
    return {};
}

PreloadCase preload_program(std::string name, Program program, unsigned scale)
{
    if (preload_library().empty())
        fail("libfaultline_malloc.so was not built beside the bench");
    auto scratch = std::make_shared<Scratch>();
    char dir[] = "/tmp/faultline-bench-heap-XXXXXX";
    if (!mkdtemp(dir))
        fail("cannot make a scratch directory");
    scratch->dir = dir;
    const Script script = script_for(program, scale);
    run_script(scratch->dir, script.prepare, false);
    scratch->expected = run_script(scratch->dir, script.run, false);

    PreloadCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ms";
    w.bytes = 4096;
    // compare() divides the nanoseconds a run returns by `units`: a
    // million of them makes the figure milliseconds.
    w.units = 1000000;
    auto timed = [scratch, script](bool preload) {
        const uint64_t start = now_ns();
        const std::string out = run_script(scratch->dir, script.run, preload);
        const uint64_t elapsed = now_ns() - start;
        if (out != scratch->expected)
            fail("output differs from the plain run's" + std::string(preload ? " under the preloaded heap" : ""));
        return elapsed;
    };
    w.run = [timed](char*) { return timed(true); };
    w.baseline_run = [timed](char*) { return timed(false); };
    w.verify = [](const char*) { };
    w.baseline_verify = [](const char*) { };
    c.faultline = std::make_unique<NoRegion>("preload");
    c.baseline = std::make_unique<NoRegion>("glibc-" + program_name(program));
    return c;
}

} // namespace bench
