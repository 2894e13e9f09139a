// Real redis-servers for the far-memory tests, the far_heap example's test
// and the bench (tests/redis_swap_test.cc, tests/redis_cluster_test.cc,
// tests/redis_store_test.cc, bench/far_workloads.cc): each started by the
// test for itself on free loopback ports in a temporary directory, with
// nothing saved, and killed (SIGKILL: there is nothing to save) by the
// destructor, pass or fail. Where redis-server (or, for a cluster,
// redis-cli) is not installed, unavailable() says so and the caller skips.
//
// Needs only hiredis and POSIX: no gtest (the *_OR_SKIP macros expand to
// GTEST_SKIP where used) and none of the library's headers, so that the
// bench can start the same servers.
#pragma once

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <random>
#include <string>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace faultline::testing {

struct ReplyFree {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

inline bool port_free(int port)
{
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(port));
    const bool ok = bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(s);
    return ok;
}

// One redis-server of the test's own: a free port, a temporary directory,
// nothing saved. Stopped (SIGKILL: there is nothing to save) by the
// destructor unless the test killed it first.
class RedisServer {
public:
    explicit RedisServer(const std::string& password = "", std::vector<std::string> extra = {})
    {
        if (access("/usr/bin/redis-server", X_OK) != 0 && system("command -v redis-server >/dev/null 2>&1") != 0) {
            why_ = "redis-server is not installed (./dev test installs it)";
            return;
        }
        char tmpl[] = "/tmp/faultline-redis-XXXXXX";
        if (!mkdtemp(tmpl)) {
            why_ = "no temporary directory";
            return;
        }
        dir_ = tmpl;
        port_ = free_port();
        const std::string port = std::to_string(port_);
        pid_ = fork();
        if (pid_ == 0) {
            // Dies with its starter, even one that crashes before the
            // destructor could kill it.
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            std::vector<const char*> argv { "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--dir",
                dir_.c_str(), "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning" };
            if (!password.empty()) {
                argv.push_back("--requirepass");
                argv.push_back(password.c_str());
            }
            for (const auto& a : extra)
                argv.push_back(a.c_str());
            argv.push_back(nullptr);
            const int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 1);
            execvp("redis-server", const_cast<char* const*>(argv.data()));
            _exit(127);
        }
        // Ready when it answers (NOAUTH counts: it is up).
        for (int i = 0; i < 500; ++i) {
            if (redisContext* c = redisConnect("127.0.0.1", port_); c && !c->err) {
                redisFree(c);
                return;
            } else if (c) {
                redisFree(c);
            }
            int status;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                why_ = "redis-server exited at start";
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        why_ = "redis-server did not answer within 5 s";
    }
    ~RedisServer()
    {
        kill();
        if (!dir_.empty())
            std::filesystem::remove_all(dir_);
    }
    void signal(int sig) const
    {
        if (pid_ > 0)
            ::kill(pid_, sig);
    }
    void kill()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    const std::string& unavailable() const { return why_; }
    int port() const { return port_; }
    std::string url(const std::string& userinfo = "") const
    {
        return "redis://" + userinfo + "127.0.0.1:" + std::to_string(port_) + "?command_timeout_ms=500";
    }
    // A separate connection: the keys under `pattern`.
    std::vector<std::string> keys(const std::string& pattern) const
    {
        std::vector<std::string> out;
        redisContext* c = redisConnect("127.0.0.1", port_);
        if (!c || c->err) {
            if (c)
                redisFree(c);
            return out;
        }
        auto* r = static_cast<redisReply*>(redisCommand(c, "KEYS %s", pattern.c_str()));
        if (r && r->type == REDIS_REPLY_ARRAY)
            for (size_t i = 0; i < r->elements; ++i)
                out.emplace_back(r->element[i]->str, r->element[i]->len);
        if (r)
            freeReplyObject(r);
        redisFree(c);
        return out;
    }

    static int free_port()
    {
        const int s = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a {};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
        getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
        close(s);
        return ntohs(a.sin_port);
    }

private:
    std::string why_;
    std::string dir_;
    int port_ = 0;
    pid_t pid_ = -1;
};

#define REDIS_OR_SKIP(server, ...)                                                                         \
    RedisServer server { __VA_ARGS__ };                                                                    \
    if (!server.unavailable().empty())                                                                     \
    GTEST_SKIP() << server.unavailable()


// Redis servers in cluster mode (by default six: 3 masters, 3 replicas),
// made one cluster by redis-cli, on free
// loopback ports (each with its bus port, +10000, free too) in a temporary
// directory. The destructor kills every one left and removes the directory.
class RedisCluster {
public:
    static constexpr int kNodes = 6; // the default: 3 masters, each with a replica

    explicit RedisCluster(int masters = 3, int replicas_per_master = 1)
        : masters_(masters)
        , replicas_(replicas_per_master)
        , nodes_(masters * (1 + replicas_per_master))
    {
        for (const char* tool : { "redis-server", "redis-cli" })
            if (system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) != 0) {
                why_ = std::string(tool) + " is not installed (./dev test installs it)";
                return;
            }
        char tmpl[] = "/tmp/faultline-redis-cluster-XXXXXX";
        if (!mkdtemp(tmpl)) {
            why_ = "no temporary directory";
            return;
        }
        dir_ = tmpl;
        std::mt19937 random(unsigned(getpid()) ^ unsigned(std::chrono::steady_clock::now().time_since_epoch().count()));
        for (int i = 0; i < nodes_; ++i) {
            int port = 0;
            for (int tries = 0; tries < 200 && !port; ++tries) {
                const int p = 20000 + int(random() % 25000);
                bool taken = false;
                for (int q : ports_)
                    taken |= q == p || q + 10000 == p || q == p + 10000;
                if (!taken && port_free(p) && port_free(p + 10000))
                    port = p;
            }
            if (!port) {
                why_ = "no free pair of loopback ports";
                return;
            }
            ports_.push_back(port);
            pids_.push_back(start(port));
        }
        for (int port : ports_)
            if (!wait_for_ms(5000, [&] { return answers(port); })) {
                why_ = "redis-server on port " + std::to_string(port) + " did not start";
                return;
            }
        std::string line = "redis-cli --cluster create";
        for (int port : ports_)
            line += " 127.0.0.1:" + std::to_string(port);
        line += " --cluster-replicas " + std::to_string(replicas_) + " --cluster-yes >" + dir_ + "/create.log 2>&1";
        if (system(line.c_str()) != 0) {
            why_ = "redis-cli --cluster create failed (see its log)";
            return;
        }
        // Ready: every node says ok, and every master has its replica
        // online (writes wait for one).
        if (!wait_for_ms(15000, [&] { return ready(); })) {
            why_ = "the cluster did not become ready within 15 s";
            return;
        }
        // And a write on each master is acknowledged by its replica: the
        // runtime's first WAITs must not meet a replica still settling.
        for (int i = 0; i < nodes_ && replicas_ > 0; ++i)
            if (is_master(i) && !wait_for_ms(5000, [&] { return replicated(i); })) {
                why_ = "no replica acknowledged a write on port " + std::to_string(port(i));
                return;
            }
    }
    ~RedisCluster()
    {
        for (size_t i = 0; i < pids_.size(); ++i)
            kill_node(int(i));
        if (!dir_.empty())
            std::filesystem::remove_all(dir_);
    }
    const std::string& unavailable() const { return why_; }
    int port(int i) const { return ports_[size_t(i)]; }
    int index_of(int port) const
    {
        for (size_t i = 0; i < ports_.size(); ++i)
            if (ports_[i] == port)
                return int(i);
        return -1;
    }
    std::string url(int i = 0) const
    {
        return "redis://127.0.0.1:" + std::to_string(port(i)) + "?command_timeout_ms=500";
    }
    void kill_node(int i)
    {
        if (pids_[size_t(i)] > 0) {
            ::kill(pids_[size_t(i)], SIGKILL);
            waitpid(pids_[size_t(i)], nullptr, 0);
            pids_[size_t(i)] = -1;
        }
    }
    bool alive(int i) const { return pids_[size_t(i)] > 0; }
    void signal(int i, int sig) const
    {
        if (pids_[size_t(i)] > 0)
            ::kill(pids_[size_t(i)], sig);
    }
    // The node replicating master i (-1: none).
    int replica_of(int i) const
    {
        for (int r = 0; r < nodes_; ++r)
            if (r != i && alive(r)
                && text(port(r), "INFO replication").find("master_port:" + std::to_string(port(i))) != std::string::npos)
                return r;
        return -1;
    }

    // After its master was killed: `replica` is a master and every live
    // node says cluster_state:ok, within `ms` (promotion takes the node
    // timeout, 2 s here, and an election).
    bool promoted(int replica, int ms) const
    {
        return wait_for_ms(ms, [&] {
            if (!is_master(replica))
                return false;
            for (int i = 0; i < nodes_; ++i)
                if (alive(i) && text(port(i), "CLUSTER INFO").find("cluster_state:ok") == std::string::npos)
                    return false;
            return true;
        });
    }

    // SET or DEL on whichever master has the key's slot (the others say
    // MOVED, and so do replicas).
    bool set(const std::string& key) const { return routed("SET %b x", key); }
    bool del(const std::string& key) const { return routed("DEL %b", key); }
    bool routed(const char* fmt, const std::string& key) const
    {
        for (int i = 0; i < nodes_; ++i) {
            if (!alive(i))
                continue;
            Reply r = command(port(i), fmt, key.data(), key.size());
            if (r && r->type != REDIS_REPLY_ERROR)
                return true;
        }
        return false;
    }

    static Reply command(int port, const char* fmt, ...)
    {
        redisContext* c = redisConnect("127.0.0.1", port);
        if (!c || c->err) {
            if (c)
                redisFree(c);
            return nullptr;
        }
        timeval t { 1, 0 };
        redisSetTimeout(c, t);
        va_list ap;
        va_start(ap, fmt);
        Reply r(static_cast<redisReply*>(redisvCommand(c, fmt, ap)));
        va_end(ap);
        redisFree(c);
        return r;
    }
    static std::string text(int port, const char* cmd)
    {
        Reply r = command(port, cmd);
        return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? std::string(r->str, r->len)
                                                                                      : std::string();
    }
    bool is_master(int i) const { return alive(i) && text(port(i), "INFO replication").find("role:master") != std::string::npos; }
    std::string id(int i) const { return text(port(i), "CLUSTER MYID"); }
    // The keys under `pattern` on each live master, by node index.
    std::map<int, std::vector<std::string>> keys(const std::string& pattern) const
    {
        std::map<int, std::vector<std::string>> out;
        for (int i = 0; i < nodes_; ++i) {
            if (!is_master(i))
                continue;
            Reply r = command(port(i), "KEYS %s", pattern.c_str());
            if (r && r->type == REDIS_REPLY_ARRAY)
                for (size_t k = 0; k < r->elements; ++k)
                    out[i].emplace_back(r->element[k]->str, r->element[k]->len);
        }
        return out;
    }
    // Every live node says cluster_state:ok and knows 3 masters, and every
    // master has its replica online (synchronised: WAIT counts it). (CLUSTER SLOTS lists replicas only
    // some 10 s later on an idle cluster: not waited for — the runtime
    // learns of them from CLUSTER NODES.)
    bool ready() const
    {
        for (int i = 0; i < nodes_; ++i) {
            if (!alive(i))
                continue;
            if (text(port(i), "CLUSTER INFO").find("cluster_state:ok") == std::string::npos)
                return false;
            Reply r = command(port(i), "CLUSTER SLOTS");
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != size_t(masters_))
                return false;
            // Every node knows who replicates whom (the replicas' pings
            // told it): a test that stops a replica stops a known one.
            const std::string nodes = text(port(i), "CLUSTER NODES");
            size_t replicas = 0;
            for (size_t at = nodes.find("slave "); at != std::string::npos; at = nodes.find("slave ", at + 1))
                ++replicas;
            if (replicas != size_t(masters_ * replicas_))
                return false;
        }
        for (int i = 0; i < nodes_ && replicas_ > 0; ++i)
            if (is_master(i) && text(port(i), "INFO replication").find("state=online") == std::string::npos)
                return false;
        return true;
    }

    // A key of master i's first slot range, written there and waited for.
    bool replicated(int i) const
    {
        Reply slots = command(port(i), "CLUSTER SLOTS");
        if (!slots || slots->type != REDIS_REPLY_ARRAY)
            return false;
        for (size_t e = 0; e < slots->elements; ++e) {
            const redisReply* range = slots->element[e];
            if (range->elements < 3 || range->element[2]->element[1]->integer != port(i))
                continue;
            for (int n = 0; n < 100000; ++n) {
                const std::string key = "warm-" + std::to_string(n);
                // The server's own hash: this header needs none of the library.
                Reply ks = command(port(i), "CLUSTER KEYSLOT %s", key.c_str());
                if (!ks || ks->type != REDIS_REPLY_INTEGER)
                    return false;
                const long long sl = ks->integer;
                if (sl < range->element[0]->integer || sl > range->element[1]->integer)
                    continue;
                redisContext* c = redisConnect("127.0.0.1", port(i));
                if (!c || c->err) {
                    if (c)
                        redisFree(c);
                    return false;
                }
                Reply set(static_cast<redisReply*>(redisCommand(c, "SET %s x", key.c_str())));
                Reply wait(static_cast<redisReply*>(redisCommand(c, "WAIT 1 500")));
                Reply del(static_cast<redisReply*>(redisCommand(c, "DEL %s", key.c_str())));
                redisFree(c);
                return set && set->type == REDIS_REPLY_STATUS && wait && wait->type == REDIS_REPLY_INTEGER
                    && wait->integer >= 1;
            }
        }
        return false;
    }

    static bool wait_for_ms(int ms, const std::function<bool()>& done)
    {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        while (std::chrono::steady_clock::now() < until) {
            if (done())
                return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return done();
    }

private:
    static bool answers(int port)
    {
        Reply r = command(port, "PING");
        return r && r->type == REDIS_REPLY_STATUS;
    }
    pid_t start(int port)
    {
        const std::string p = std::to_string(port), conf = "nodes-" + p + ".conf";
        const pid_t pid = fork();
        if (pid == 0) {
            // Dies with the test program, even one that crashes before the
            // destructor could kill it.
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            const char* argv[] = { "redis-server", "--port", p.c_str(), "--cluster-enabled", "yes",
                "--cluster-config-file", conf.c_str(), "--dir", dir_.c_str(), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--cluster-node-timeout", "2000", "--daemonize", "no", "--loglevel", "warning",
                // A replica's first sync at once, not after the default 5 s
                // wait for more replicas to share it.
                "--repl-diskless-sync-delay", "0", nullptr };
            const int devnull = open("/dev/null", O_WRONLY);
            // Not the test's stdout nor stderr: a pipe reading them would
            // wait for the servers too.
            dup2(devnull, 1);
            dup2(devnull, 2);
            execvp("redis-server", const_cast<char* const*>(argv));
            _exit(127);
        }
        return pid;
    }

    int masters_, replicas_, nodes_;
    std::string why_;
    std::string dir_;
    std::vector<int> ports_;
    std::vector<pid_t> pids_;
};

#define CLUSTER_OR_SKIP(cluster)                                                                           \
    RedisCluster cluster;                                                                                  \
    if (!cluster.unavailable().empty())                                                                    \
    GTEST_SKIP() << cluster.unavailable()

} // namespace faultline::testing
