// The heap under a budget (issue: budgeted heap, part 6): a program whose
// heap is 4x the budget but whose hot set fits completes correctly, with the
// heap's resident memory — sampled from /proc/PID/smaps while it runs —
// never above the budget plus one eviction batch. Its pages were swapped out
// and back, its slots were given back as it rewrote and freed memory. The
// program (budget_worker.cc) checks every byte itself; 8 of its threads
// allocate and free while eviction runs.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>

#include <cerrno>
#include <dirent.h>
#include <iterator>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace {

std::string env(const char* name)
{
    const char* v = getenv(name);
    return v ? v : "";
}

// The resident KiB of [lo, hi) in `pid` (every VMA inside: the allocator
// splits the heap's mapping), or -1 when it cannot be read (the process is
// gone).
long rss_kib(pid_t pid, unsigned long lo, unsigned long hi)
{
    std::ifstream smaps("/proc/" + std::to_string(pid) + "/smaps");
    if (!smaps)
        return -1;
    std::string line;
    bool inside = false, any = false;
    long rss = 0;
    while (std::getline(smaps, line)) {
        unsigned long start, end;
        char dash;
        std::istringstream head(line);
        if (line.find(':') > line.find(' ') && (head >> std::hex >> start >> dash >> end) && dash == '-') {
            inside = start >= lo && end <= hi;
            any = true;
            continue;
        }
        if (inside && line.rfind("Rss:", 0) == 0)
            rss += std::strtol(line.c_str() + 4, nullptr, 10);
    }
    return any ? rss : -1;
}

// True once every thread of `pid` is stopped (or the process is gone).
bool all_stopped(pid_t pid)
{
    const std::string dir = "/proc/" + std::to_string(pid) + "/task/";
    DIR* d = opendir(dir.c_str());
    if (!d)
        return true;
    bool stopped = true;
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        std::ifstream stat(dir + e->d_name + "/stat");
        std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
        const size_t paren = text.rfind(')');
        if (paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'T' && text[paren + 2] != 't'
            && text[paren + 2] != 'Z' && text[paren + 2] != 'X')
            stopped = false;
    }
    closedir(d);
    return stopped;
}

uint64_t json_number(const std::string& json, const std::string& key)
{
    const size_t at = json.find("\"" + key + "\":");
    if (at == std::string::npos)
        return 0;
    return std::strtoull(json.c_str() + at + key.size() + 3, nullptr, 10);
}

TEST(HeapBudget, AHeapFourTimesTheBudgetWithAFittingHotSetStaysUnderIt)
{
    const std::string tool = env("FAULTLINE_TEST_CLI"), worker = env("FAULTLINE_TEST_BUDGET_WORKER");
    if (tool.empty() || worker.empty())
        GTEST_SKIP() << "FAULTLINE_TEST_CLI / FAULTLINE_TEST_BUDGET_WORKER not set (tests/meson.build sets them)";
    // The masked-feature suite hides write-protect faults: a budget is then
    // refused (the preload says so), and there is nothing to measure.
    const std::string probe = "'" + tool + "' run --budget 1M -- /bin/true";
    if (system(("env -u LD_PRELOAD " + probe + " 2>/dev/null").c_str()) != 0)
        GTEST_SKIP() << "no budget here (it needs write-protect faults on anonymous memory)";
    const long budget_kib = 16 * 1024, batch_kib = 64 * long(sysconf(_SC_PAGESIZE)) / 1024;
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        unsetenv("LD_PRELOAD"); // the tool is started as a user's shell would
        // 64 MiB of heap (4x), a 4 MiB hot set rewritten 10 times.
        execl(tool.c_str(), "faultline", "run", "--budget", "16M", "--", worker.c_str(), "64", "4", "10", nullptr);
        _exit(127);
    }
    close(out[1]);
    std::string text;
    char buf[4096];
    // The first line says where the heap is.
    while (text.find('\n') == std::string::npos) {
        const ssize_t n = read(out[0], buf, sizeof buf);
        if (n <= 0)
            break;
        text.append(buf, size_t(n));
    }
    unsigned long base = 0, size = 0;
    ASSERT_EQ(sscanf(text.c_str(), "heap %lx %lx", &base, &size), 2) << text;
    long max_kib = 0;
    int samples = 0, unstopped = 0;
    std::atomic<bool> done { false };
    std::thread sampler([&] {
        while (!done) {
            // Stopped while it is measured: a walk of the page tables is not
            // atomic, and pages dropped behind it and filled ahead of it
            // would be counted twice. SIGSTOP stops every thread, the
            // runtime's too. Not an io_uring worker caught in a fault on the
            // heap (the evictor's write of a page that went missing): it
            // stops only once that fault is served, and the handler threads
            // that would serve it are stopped. Such a sample is let go —
            // a wait for it would wait for ever.
            if (kill(child, SIGSTOP) != 0)
                break;
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
            bool stopped = false;
            while (!(stopped = all_stopped(child)) && !done && std::chrono::steady_clock::now() < give_up)
                std::this_thread::yield();
            const long kib = stopped ? rss_kib(child, base, base + size) : -1;
            kill(child, SIGCONT);
            if (!stopped)
                ++unstopped;
            if (kib > 0) {
                max_kib = std::max(max_kib, kib);
                ++samples;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(3));
        }
    });
    for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;)
        text.append(buf, size_t(n));
    close(out[0]);
    done = true;
    sampler.join();
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "status " << status << "\n" << text;
    ASSERT_EQ(WEXITSTATUS(status), 0) << text;
    EXPECT_NE(text.find("bad 0"), std::string::npos) << text;
    EXPECT_GT(samples, 5) << "the heap's resident size was sampled while the program ran";
    EXPECT_LE(max_kib, budget_kib + batch_kib) << "never above the budget plus one batch (" << samples << " samples, "
                                               << unstopped << " let go unstopped)\n" << text;
    // The only way past it: the evictor found nothing to evict while faults
    // waited, and opened the budget rather than let them wait for ever.
    EXPECT_EQ(json_number(text, "overruns"), 0u) << text;
    EXPECT_GT(json_number(text, "swapped_out"), 0u) << text;
    EXPECT_GT(json_number(text, "swapped_in"), 0u) << text;
    EXPECT_GT(json_number(text, "slots_reclaimed"), 0u) << text;
    EXPECT_EQ(json_number(text, "read_errors"), 0u) << text;
}

} // namespace
