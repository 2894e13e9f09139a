#include "spawn.h"

#include <cstdlib>
#include <cstring>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace faultline::heap_testing {

Spawned spawn_script(const std::string& script, bool preload)
{
    const char* library = getenv("FAULTLINE_TEST_PRELOAD");
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0)
            env.emplace_back(*e);
    if (preload && library)
        env.push_back(std::string("LD_PRELOAD=") + library);
    std::vector<char*> envp;
    for (auto& e : env)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    int out[2], err[2];
    if (pipe(out) != 0)
        return {};
    if (pipe(err) != 0) {
        close(out[0]);
        close(out[1]);
        return {};
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addclose(&actions, err[0]);
    std::string body = script;
    char* argv[] = { const_cast<char*>("sh"), const_cast<char*>("-c"), body.data(), nullptr };
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err[1]);
    Spawned r;
    if (rc == 0) {
        // Both pipes at once: a child filling one while we wait on the
        // other would block forever.
        pollfd fds[2] = { { out[0], POLLIN, 0 }, { err[0], POLLIN, 0 } };
        std::string* into[2] = { &r.out, &r.err };
        int open_fds = 2;
        char buffer[65536];
        while (open_fds > 0 && poll(fds, 2, -1) > 0)
            for (int k = 0; k < 2; ++k) {
                if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP)))
                    continue;
                const ssize_t n = read(fds[k].fd, buffer, sizeof buffer);
                if (n > 0) {
                    into[k]->append(buffer, size_t(n));
                } else {
                    fds[k].fd = -1;
                    --open_fds;
                }
            }
        waitpid(pid, &r.status, 0);
    }
    close(out[0]);
    close(err[0]);
    return r;
}

} // namespace faultline::heap_testing
