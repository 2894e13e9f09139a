// Helpers for kernel tests that fork or can hang.
//
// A regression in fault service shows as a thread waiting forever on a page
// fault nobody answers: no assertion can interrupt that wait. Watchdog turns
// such a hang into a failure of the whole test program, with a message
// naming what hung, instead of a stalled suite.
//
// A fork child of the test process must not use gtest assertions (they would
// report in the wrong process, and the child has none of the parent's
// threads). ForkedChild runs a body in the child under alarm(2), collects
// the child's checks as text and sends them up a pipe; the parent reaps it
// with a bound and asserts on its exit status and report.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace faultline::testing {

class Watchdog {
public:
    // Ends the test program (exit status 97) unless destroyed within
    // `seconds`; kills `child` first so that no fork child is left behind.
    Watchdog(const char* what, int seconds, pid_t child = 0)
        : what_(what)
        , seconds_(seconds)
        , child_(child)
        , thread_([this] { run(); })
    {
    }
    ~Watchdog()
    {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

private:
    void run()
    {
        std::unique_lock lock(mutex_);
        if (cv_.wait_for(lock, std::chrono::seconds(seconds_), [this] { return done_; }))
            return;
        fprintf(stderr, "\nWATCHDOG: %s did not finish within %d s (a thread is stuck on an unserved fault?); "
                        "failing the test program\n", what_, seconds_);
        if (child_ > 0)
            kill(child_, SIGKILL);
        _exit(97);
    }

    const char* what_;
    int seconds_;
    pid_t child_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

class ForkedChild {
public:
    struct Outcome {
        int status = 0;
        bool timed_out = false;
        std::string report;

        bool exited_zero() const { return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
        std::string describe() const
        {
            std::string s;
            if (timed_out)
                s = "child did not end in time and was killed";
            else if (WIFEXITED(status))
                s = "child exited with " + std::to_string(WEXITSTATUS(status));
            else if (WIFSIGNALED(status))
                s = std::string("child killed by signal ") + strsignal(WTERMSIG(status))
                    + (WTERMSIG(status) == SIGALRM ? " (its alarm: it hung)" : "");
            if (!report.empty())
                s += "; child's report:\n" + report;
            return s;
        }
    };

    // Forks; the child runs body(*this) under alarm(alarm_seconds) and
    // _exits with 0 when every check passed, 1 otherwise. A body may end
    // the child itself (exit, _exit).
    template <typename Body>
    explicit ForkedChild(Body&& body, unsigned alarm_seconds = 30)
    {
        int ready[2], release[2], report[2];
        if (pipe2(ready, O_CLOEXEC) != 0)
            return;
        if (pipe2(release, O_CLOEXEC) != 0) {
            close_pair(ready);
            return;
        }
        if (pipe2(report, O_CLOEXEC) != 0) {
            close_pair(ready);
            close_pair(release);
            return;
        }
        pid_ = fork();
        if (pid_ < 0) {
            close_pair(ready);
            close_pair(release);
            close_pair(report);
            return;
        }
        const bool child = pid_ == 0;
        // Each side keeps its ends; pipe[1] is the write end.
        ready_ = child ? ready[1] : ready[0];
        release_ = child ? release[0] : release[1];
        report_ = child ? report[1] : report[0];
        close(child ? ready[0] : ready[1]);
        close(child ? release[1] : release[0]);
        close(child ? report[0] : report[1]);
        if (child) {
            alarm(alarm_seconds);
            body(*this);
            _exit(failures_ == 0 ? 0 : 1);
        }
    }
    ~ForkedChild()
    {
        if (pid_ > 0 && !reaped_)
            (void)reap(0);
        for (int fd : { ready_, release_, report_ })
            if (fd >= 0)
                close(fd);
    }
    ForkedChild(const ForkedChild&) = delete;
    ForkedChild& operator=(const ForkedChild&) = delete;

    bool started() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }

    // --- child side ---

    // Records a failed check (printf-style description) when !ok. Sent to
    // the parent at once, so it survives the child crashing later.
    [[gnu::format(printf, 3, 4)]] void check(bool ok, const char* fmt, ...)
    {
        if (ok)
            return;
        ++failures_;
        char line[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(line, sizeof line - 1, fmt, ap);
        va_end(ap);
        n = n < 0 ? 0 : std::min(n, int(sizeof line) - 2);
        line[n++] = '\n';
        (void)!write(report_, line, size_t(n));
    }
    // Tells the parent (waiting in wait_ready) that the child got this far.
    void ready() { (void)!write(ready_, "R", 1); }
    // Blocks until the parent calls release() or exits (end of file).
    void wait_for_parent()
    {
        char c;
        while (read(release_, &c, 1) < 0 && errno == EINTR) {
        }
    }

    // --- parent side ---

    // True once the child called ready(); false if it died or took longer
    // than `seconds`.
    bool wait_ready(int seconds = 20)
    {
        pollfd p { ready_, POLLIN, 0 };
        if (poll(&p, 1, seconds * 1000) != 1)
            return false;
        char c = 0;
        return read(ready_, &c, 1) == 1 && c == 'R';
    }
    void release() { (void)!write(release_, "G", 1); }
    // True while the child has not ended (it is not reaped here).
    bool alive() const
    {
        siginfo_t info {};
        return waitid(P_PID, id_t(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
    }
    // Reaps the child, killing it after `seconds`; collects its report.
    Outcome reap(int seconds = 30)
    {
        Outcome out;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        for (;;) {
            pid_t w = waitpid(pid_, &out.status, WNOHANG);
            if (w == pid_)
                break;
            if (w < 0 && errno != EINTR)
                break;
            if (std::chrono::steady_clock::now() >= deadline) {
                kill(pid_, SIGKILL);
                waitpid(pid_, &out.status, 0);
                out.timed_out = true;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        reaped_ = true;
        char buf[512];
        pollfd p { report_, POLLIN, 0 };
        while (poll(&p, 1, 0) == 1) {
            ssize_t n = read(report_, buf, sizeof buf);
            if (n <= 0)
                break;
            out.report.append(buf, size_t(n));
        }
        return out;
    }

private:
    static void close_pair(int fds[2])
    {
        close(fds[0]);
        close(fds[1]);
    }

    pid_t pid_ = -1;
    bool reaped_ = false;
    int ready_ = -1;   // child -> parent: 'R'
    int release_ = -1; // parent -> child: go on
    int report_ = -1;  // child -> parent: one line per failed check
    int failures_ = 0;
};

} // namespace faultline::testing
