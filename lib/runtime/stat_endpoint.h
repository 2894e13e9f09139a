// runtime/stat_endpoint.h — the statistics endpoint: a Unix stream socket
// through which `faultline stat PID` reads a live runtime's region table and
// counters without stopping the process (docs/stat.md; the address and the
// protocol are in faultline/stat_protocol.h).
//
// Address. The Linux abstract namespace, "@faultline/<pid>/<n>": an abstract
// name disappears with its last descriptor, so a crashed process leaves no
// stale socket file behind, and there is no directory whose permissions or
// cleanup could go wrong ($XDG_RUNTIME_DIR is unset for daemons, /tmp is
// shared and sticky). The price is that an abstract socket has no file
// permissions at all: anyone in the network namespace can connect. That is
// why every connection's peer credentials (SO_PEERCRED) are checked: only
// the runtime's effective user and root are answered. <n> is a per-process
// sequence number, because a process may create several runtimes (the tests
// do); a name found taken (a process with the same pid in another pid
// namespace sharing the network namespace) is skipped for the next number.
//
// Thread. One small thread of its own serves the connections one at a time
// (never a fault-handler thread: a slow client must not delay a fault). It
// sleeps in poll(2) on the listening socket and an eventfd that stops it;
// every wait on a client also watches that eventfd and has a deadline, so
// neither a client that never sends nor one that never reads can hold the
// thread, or the runtime's destruction, for longer than a timeout.
//
// fork. A fork child publishes nothing: its copy of the runtime is inert
// (runtime/fork_guard.h), so it has nothing to report under its own pid, and
// it must not keep the parent's name alive either. A pthread_atfork child
// handler closes the child's copies of every endpoint's descriptors, so the
// name lives exactly as long as the parent's endpoint does, and the child
// can never write to the eventfd it shares with the parent's thread.
#pragma once

#include "runtime/fork_guard.h"

#include <faultline/result.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace faultline {

class StatEndpoint {
public:
    // Builds the reply document; runs on the endpoint's thread.
    using Report = std::function<std::string()>;
    struct Options {
        // How long a client may take to send its request line.
        std::chrono::milliseconds request_timeout { 1000 };
        // How long a reply may take to leave; a client that stops reading
        // is dropped after it (the next client waits at most this long).
        std::chrono::milliseconds reply_timeout { 5000 };
    };

    // Binds the next free "@faultline/<pid>/<n>" and listens; clients
    // wait in the backlog until start(). Two steps, so that the owner can
    // store the endpoint where the report reads it before any report runs.
    // Errors: socket(2)/eventfd(2) failures (EMFILE, ENFILE, ENOMEM),
    // EADDRINUSE when 16 names in a row are taken.
    static Result<std::unique_ptr<StatEndpoint>> open(Report report, Options options);
    static Result<std::unique_ptr<StatEndpoint>> open(Report report) { return open(std::move(report), Options {}); }
    // Starts the thread (EAGAIN when it cannot start). Once.
    Result<void> start();
    // Stops serving: wakes the thread out of any wait (a reply half sent
    // is cut off) and joins it. Idempotent; the destructor calls it. The
    // name stays bound until destruction, refusing nobody but answering
    // nobody either (connections wait in the backlog until then).
    void stop() noexcept;
    ~StatEndpoint();
    StatEndpoint(const StatEndpoint&) = delete;
    StatEndpoint& operator=(const StatEndpoint&) = delete;

    // "@faultline/<pid>/<n>"; empty in a fork child, which serves nothing.
    std::string address() const;
    // Replies sent in full, and connections refused for their credentials.
    uint64_t replies() const noexcept { return replies_.load(std::memory_order_relaxed); }
    uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

private:
    StatEndpoint(Report report, Options options);
    Result<void> open_socket();
    void run() noexcept;
    void serve(int client) noexcept;
    // Waits until `fd` reports one of `events` (true), or until the
    // deadline passes or the endpoint is stopped (false).
    bool wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) const noexcept;
    bool send_all(int client, std::string_view data, std::chrono::steady_clock::time_point deadline) const noexcept;
    bool read_request(int client, std::string& line) const noexcept;
    static void after_fork_in_child() noexcept;

    Report report_;
    Options options_;
    ForkGuard fork_guard_;
    std::string name_; // the abstract name, without the leading NUL
    // Written under the registry lock (stat_endpoint.cc) by the owner and
    // by the fork child handler; read without it by the endpoint's thread.
    int listen_fd_ = -1;
    int stop_fd_ = -1;
    std::atomic<int> client_fd_ { -1 }; // the connection being served, for the fork child handler
    std::atomic<uint64_t> replies_ { 0 };
    std::atomic<uint64_t> refused_ { 0 };
    std::thread thread_;
};

} // namespace faultline
