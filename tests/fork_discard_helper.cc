// tests/fork_discard_helper.cc — a program whose own pthread_atfork prepare
// handler runs after the runtime's (it is registered before the runtime
// exists, and prepare handlers run in the reverse order) and discards
// memory of a region, as the allocator's purge does under the preloaded heap
// (lib/heap/preload.cc). The runtime holds its API lock across the fork by
// then. Exits 0 once the fork returned on both sides, 77 without a runtime;
// SIGALRM ends it after 20 s if the fork hung.
#include <faultline/runtime.h>

#include <cstdio>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

faultline::Runtime* g_runtime = nullptr;
char* g_region = nullptr;
bool g_discarded = false;

void prepare()
{
    if (g_runtime)
        g_discarded = bool(g_runtime->discard(g_region, 4096));
}

} // namespace

int main()
{
    alarm(20);
    pthread_atfork(prepare, nullptr, nullptr);
    auto runtime = faultline::Runtime::create({});
    if (!runtime) {
        fprintf(stderr, "no runtime: %s\n", runtime.error().message());
        return 77;
    }
    auto region = (*runtime)->map_anonymous({ .size = 16 * 4096 });
    if (!region)
        return 2;
    g_region = static_cast<char*>(*region);
    g_region[0] = 'x';
    g_runtime = runtime->get();
    pid_t pid = fork();
    if (pid < 0)
        return 3;
    if (pid == 0)
        _exit(0);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 4;
    if (!g_discarded)
        return 5;
    // Discarded: the page reads zeros again.
    return g_region[0] == 0 ? 0 : 6;
}
