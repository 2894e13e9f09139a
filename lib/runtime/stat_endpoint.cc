#include "runtime/stat_endpoint.h"
#include "support/runtime_thread.h"
#include "support/try.h"

#include "support/log.h"

#include <faultline/stat_protocol.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace faultline {

namespace {

using Clock = std::chrono::steady_clock;

// Names tried before giving up: more than a few taken in a row means
// something else squats the prefix, not a pid collision.
constexpr unsigned kNameAttempts = 16;
// The longest request line read; a client cannot make the thread allocate.
constexpr size_t kMaxRequest = 64;
// The pause after accept(2) fails for lack of descriptors or memory: the
// pending connection keeps the listening socket readable, and retrying at
// once would spin.
constexpr int kAcceptBackoffMs = 100;

// Per-process runtime numbers (the <n> of "@faultline/<pid>/<n>"). A fork
// child continues from its parent's value; its names carry its own pid.
std::atomic<unsigned> g_next_number { 0 };

// The live endpoints of this process, for the fork child handler. Leaked on
// purpose: atfork handlers and runtimes destroyed during static destruction
// may still use it.
struct Registry {
    std::mutex lock;
    std::vector<StatEndpoint*> live;
};
Registry& registry()
{
    static Registry* r = new Registry;
    return *r;
}

} // namespace

StatEndpoint::StatEndpoint(Report report, Options options)
    : report_(std::move(report))
    , options_(options)
{
}

Result<std::unique_ptr<StatEndpoint>> StatEndpoint::open(Report report, Options options)
{
    static std::once_flag once;
    // The prepare handler holds the registry lock across fork(2) so that
    // the child sees a consistent list; both sides release it after.
    std::call_once(once, [] {
        pthread_atfork([] { registry().lock.lock(); }, [] { registry().lock.unlock(); }, after_fork_in_child);
    });
    std::unique_ptr<StatEndpoint> endpoint(new (std::nothrow) StatEndpoint(std::move(report), options));
    if (!endpoint)
        return fail(ENOMEM, "no memory for the statistics endpoint");
    // On failure the destructor closes what was opened and leaves the
    // registry.
    if (auto opened = endpoint->open_socket(); !opened)
        return std::unexpected(opened.error());
    return endpoint;
}

Result<void> StatEndpoint::start()
{
    if (thread_.joinable())
        return fail(EBUSY, "the statistics endpoint is already serving");
    thread_ = TRY(start_runtime_thread("statistics endpoint", [this] { run(); }));
    return {};
}

Result<void> StatEndpoint::open_socket()
{
    // Descriptors are created and registered under the registry lock: a
    // fork between the two would leave the child a copy no handler closes.
    std::lock_guard guard(registry().lock);
    try {
        registry().live.push_back(this);
    } catch (const std::bad_alloc&) {
        return fail(ENOMEM, "no memory to register the statistics endpoint");
    }
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0)
        return failf(errno, "statistics endpoint: eventfd failed: %s", strerror(errno));
    // Non-blocking: a client that connects and leaves before accept(2)
    // must not block the thread in accept.
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd_ < 0)
        return failf(errno, "statistics endpoint: socket failed: %s", strerror(errno));
    const pid_t pid = getpid();
    for (unsigned attempt = 0; attempt < kNameAttempts; ++attempt) {
        std::string name = stat_protocol::name(pid, g_next_number.fetch_add(1, std::memory_order_relaxed));
        sockaddr_un address;
        const socklen_t length = stat_protocol::make_address(name, address);
        if (bind(listen_fd_, reinterpret_cast<const sockaddr*>(&address), length) == 0) {
            if (listen(listen_fd_, 16) != 0)
                return failf(errno, "statistics endpoint: listen failed: %s", strerror(errno));
            name_ = std::move(name);
            return {};
        }
        if (errno != EADDRINUSE)
            return failf(errno, "statistics endpoint: cannot bind %s: %s", stat_protocol::display(name).c_str(),
                strerror(errno));
        log::info("statistics endpoint: {} is taken, trying the next number", stat_protocol::display(name));
    }
    return failf(EADDRINUSE, "statistics endpoint: %u names under @faultline/%d/ in a row are taken", kNameAttempts,
        int(pid));
}

void StatEndpoint::stop() noexcept
{
    if (!fork_guard_.in_owner()) {
        // A fork child's copy: the thread is the parent's (nothing to join
        // or detach: overwrite the handle), and the child handler already
        // closed this process's descriptors, the eventfd among them.
        new (&thread_) std::thread();
    } else if (thread_.joinable()) {
        uint64_t one = 1;
        (void)!write(stop_fd_, &one, sizeof one);
        thread_.join();
    }
}

StatEndpoint::~StatEndpoint()
{
    stop();
    std::lock_guard guard(registry().lock);
    // Closed under the lock: a fork racing with this must not see a
    // descriptor number that is closed (and maybe reused) in the parent.
    for (int* fd : { &listen_fd_, &stop_fd_ })
        if (*fd >= 0) {
            close(*fd);
            *fd = -1;
        }
    auto& live = registry().live;
    live.erase(std::remove(live.begin(), live.end(), this), live.end());
}

void StatEndpoint::after_fork_in_child() noexcept
{
    // Runs in the child with the registry lock held since the prepare
    // handler. close(2) is async-signal-safe; nothing here allocates.
    for (StatEndpoint* e : registry().live) {
        for (int* fd : { &e->listen_fd_, &e->stop_fd_ })
            if (*fd >= 0) {
                close(*fd);
                *fd = -1;
            }
        // The parent's thread may be serving a client: this process's
        // copy of that connection would hold the client's end of the reply
        // open. (A connection accepted but not yet recorded keeps its copy
        // until exec or exit; the client stops at the reply's newline.)
        if (int client = e->client_fd_.exchange(-1); client >= 0)
            close(client);
    }
    registry().lock.unlock();
}

std::string StatEndpoint::address() const
{
    if (!fork_guard_.in_owner() || name_.empty())
        return {};
    return stat_protocol::display(name_);
}

void StatEndpoint::run() noexcept
{
    begin_runtime_thread("faultline-stat");
    for (;;) {
        pollfd p[2] = { { stop_fd_, POLLIN, 0 }, { listen_fd_, POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log::error("statistics endpoint: poll failed: {}; no longer serving", strerror(errno));
            return;
        }
        if (p[0].revents)
            return;
        if (p[1].revents & (POLLERR | POLLNVAL)) {
            log::error("statistics endpoint: the listening socket failed; no longer serving");
            return;
        }
        if (!(p[1].revents & POLLIN))
            continue;
        int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log::warn("statistics endpoint: accept failed: {}; retrying shortly", strerror(errno));
                pollfd stop { stop_fd_, POLLIN, 0 };
                if (poll(&stop, 1, kAcceptBackoffMs) > 0)
                    return;
            }
            continue; // EAGAIN, ECONNABORTED, EINTR: the client went away
        }
        client_fd_.store(client);
        serve(client);
        // Taken back before closing: the fork child handler must not close
        // a number this process may reuse at once.
        if (client_fd_.exchange(-1) >= 0)
            close(client);
    }
}

void StatEndpoint::serve(int client) noexcept
{
    ucred peer {};
    socklen_t length = sizeof peer;
    const uid_t self = geteuid();
    const bool known = getsockopt(client, SOL_SOCKET, SO_PEERCRED, &peer, &length) == 0;
    if (!known || (peer.uid != self && peer.uid != 0)) {
        // Answered before the request is read: a refused peer learns
        // nothing but the reason.
        refused_.fetch_add(1, std::memory_order_relaxed);
        char line[192];
        if (known)
            snprintf(line, sizeof line,
                "refused: uid %u may not read the statistics of this process (uid %u): only its user or root may\n",
                unsigned(peer.uid), unsigned(self));
        else
            snprintf(line, sizeof line, "refused: the peer's credentials are unknown\n");
        log::info("statistics endpoint: refused pid {} uid {}", int(peer.pid), unsigned(peer.uid));
        (void)send_all(client, line, Clock::now() + options_.request_timeout);
        return;
    }
    std::string request;
    if (!read_request(client, request))
        return;
    std::string reply;
    if (request + "\n" != stat_protocol::kRequest) {
        reply = "error: unsupported request; this runtime speaks protocol 1: \"stat 1\"\n";
    } else {
        // No exception may leave the thread: a report that cannot be built
        // (no memory) is an error line, and the endpoint keeps serving.
        try {
            reply = report_();
            reply += '\n';
        } catch (...) {
            reply = "error: the report could not be built\n";
        }
    }
    if (send_all(client, reply, Clock::now() + options_.reply_timeout) && reply.front() == '{')
        replies_.fetch_add(1, std::memory_order_relaxed);
}

bool StatEndpoint::read_request(int client, std::string& line) const noexcept
{
    const auto deadline = Clock::now() + options_.request_timeout;
    char buf[kMaxRequest];
    size_t used = 0;
    while (used < sizeof buf) {
        ssize_t n = recv(client, buf + used, sizeof buf - used, 0);
        if (n > 0) {
            used += size_t(n);
            if (auto* nl = static_cast<char*>(memchr(buf, '\n', used))) {
                line.assign(buf, size_t(nl - buf));
                return true;
            }
            continue;
        }
        if (n == 0)
            return false; // the client closed without a request
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || !wait_for(client, POLLIN, deadline))
            return false;
    }
    // A line longer than any request: answer it as an unknown one.
    line.assign(buf, sizeof buf);
    return true;
}

bool StatEndpoint::send_all(int client, std::string_view data, Clock::time_point deadline) const noexcept
{
    while (!data.empty()) {
        // MSG_NOSIGNAL: a client that closed early must not SIGPIPE the
        // whole process.
        ssize_t n = send(client, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data.remove_prefix(size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return false;
        if (!wait_for(client, POLLOUT, deadline))
            return false;
    }
    return true;
}

bool StatEndpoint::wait_for(int fd, short events, Clock::time_point deadline) const noexcept
{
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0)
            return false;
        pollfd p[2] = { { stop_fd_, POLLIN, 0 }, { fd, events, 0 } };
        int n = poll(p, 2, int(std::min<long long>(left, 60000)));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || p[0].revents)
            return false;
        // Hang-up and errors count too: the next recv/send reports them.
        if (p[1].revents)
            return true;
    }
}

} // namespace faultline
