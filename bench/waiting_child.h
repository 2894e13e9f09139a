// bench/waiting_child.h — a fork child that waits until released: the
// other process of the cases that time fork().
#pragma once

#include "bench.h"

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {

class WaitingChild {
public:
    // Forks; returns in the parent only. The child says it runs (see
    // wait_running), runs `check` (if any) and exits with its result (0:
    // fine) once released. fork() is timed by the caller.
    explicit WaitingChild(std::function<int()> check = {})
    {
        if (pipe(pipe_) != 0 || pipe(running_) != 0)
            fail(std::string("pipe failed: ") + strerror(errno));
        pid_ = fork();
        if (pid_ < 0)
            fail(std::string("fork failed: ") + strerror(errno));
        if (pid_ == 0) {
            (void)!write(running_[1], "R", 1);
            const int status = check ? check() : 0;
            char c;
            close(pipe_[1]);
            (void)!read(pipe_[0], &c, 1);
            _exit(status);
        }
    }
    ~WaitingChild() { (void)release(); }
    // Waits until the child runs its own code: the fork's cost to the
    // child (its pthread_atfork handlers) is behind it.
    void wait_running()
    {
        char c;
        (void)!read(running_[0], &c, 1);
    }
    // Lets the child end and reaps it: its exit status (0: fine), -1 for a
    // signal.
    int release()
    {
        if (pid_ <= 0)
            return 0;
        close(pipe_[0]);
        close(pipe_[1]);
        close(running_[0]);
        close(running_[1]);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

private:
    int pipe_[2] = { -1, -1 };
    int running_[2] = { -1, -1 };
    pid_t pid_ = 0;
};

} // namespace bench
