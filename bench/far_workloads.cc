// bench/far_workloads.cc — far memory's cases (far_workloads.h): the swap
// cases of swap_workloads.cc, built twice — once with a redis:// swap_path,
// once with the local swap file — and put side by side, so the ratio is
// Redis's cost against the local file's, measured in the same run.
#include "far_workloads.h"

#include "swap_mappers.h"

// The servers the tests start, started the same way here.
#include "redis_servers.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

namespace bench {

namespace {

using faultline::testing::RedisCluster;
using faultline::testing::RedisServer;

// `redis` as the case, its faultline side against `file`'s faultline side.
SwapCase against_file(SwapCase redis, SwapCase file, std::shared_ptr<void> servers)
{
    Workload& w = redis.workload;
    w.baseline_run = std::move(file.workload.run);
    w.baseline_verify = std::move(file.workload.verify);
    if (auto* m = dynamic_cast<SwapHeapMapper*>(file.faultline.get()))
        m->relabel("faultline-swapfile");
    redis.baseline = std::move(file.faultline);
    redis.servers = std::move(servers);
    return redis;
}

std::shared_ptr<RedisServer> start_server()
{
    auto server = std::make_shared<RedisServer>();
    if (!server->unavailable().empty())
        throw Unavailable(server->unavailable());
    return server;
}

// The floor of far_swap_in_rand: GETs of page-sized values, pipelined.
class HiredisReader final : public Mapper {
public:
    HiredisReader(std::shared_ptr<RedisServer> server, size_t reads)
        : server_(std::move(server)), reads_(reads)
    {
    }
    ~HiredisReader() override
    {
        if (ctx_)
            redisFree(ctx_);
    }
    std::string name() const override { return "hiredis-get-pipelined"; }
    char* map(size_t, bool) override
    {
        if (!ctx_) {
            ctx_ = redisConnect("127.0.0.1", server_->port());
            if (!ctx_ || ctx_->err)
                fail("cannot connect to the bench's redis-server");
        }
        // Untimed: the values, each a page of bytes of its own.
        order_.resize(reads_);
        for (size_t i = 0; i < reads_; ++i)
            order_[i] = uint32_t(i);
        std::shuffle(order_.begin(), order_.end(), std::mt19937_64(++seed_));
        page_.resize(page_size());
        for (size_t i = 0; i < reads_; ++i) {
            std::fill(page_.begin(), page_.end(), char(i * 7 + seed_));
            const std::string k = key(i);
            redisAppendCommand(ctx_, "SET %b %b", k.data(), k.size(), page_.data(), page_.size());
        }
        for (size_t i = 0; i < reads_; ++i)
            take_reply(REDIS_REPLY_STATUS);
        return page_.data();
    }
    void unmap(char*, size_t) override {}
    uint64_t run()
    {
        constexpr size_t kPipeline = 64;
        uint64_t sum = 0;
        const uint64_t t0 = now_ns();
        for (size_t at = 0; at < reads_; at += kPipeline) {
            const size_t n = std::min(kPipeline, reads_ - at);
            for (size_t i = 0; i < n; ++i) {
                const std::string k = key(order_[at + i]);
                redisAppendCommand(ctx_, "GET %b", k.data(), k.size());
            }
            for (size_t i = 0; i < n; ++i) {
                redisReply* r = take_reply(REDIS_REPLY_STRING);
                if (size_t(r->len) != page_size())
                    fail("far_swap_in_rand/hiredis: a value is not a page");
                // What a fault does with the page: copy it out (here, one byte).
                sum += uint64_t(static_cast<unsigned char>(r->str[i % page_size()])) ^ order_[at + i];
                page_[0] = r->str[0];
                freeReplyObject(r);
            }
        }
        const uint64_t elapsed = now_ns() - t0;
        sum_ = sum;
        return elapsed;
    }
    void verify() const
    {
        uint64_t want = 0;
        for (size_t i = 0; i < reads_; ++i)
            want += uint64_t(static_cast<unsigned char>(char(order_[i] * 7 + seed_))) ^ order_[i];
        if (want != sum_)
            fail("far_swap_in_rand/hiredis: the values read are not the ones written");
    }

private:
    static std::string key(size_t i) { return "bench:floor:" + std::to_string(i); }
    redisReply* take_reply(int type)
    {
        void* raw = nullptr;
        if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw)
            fail("the bench's redis-server did not answer");
        auto* r = static_cast<redisReply*>(raw);
        if (r->type != type)
            fail("the bench's redis-server answered an error");
        return r;
    }

    std::shared_ptr<RedisServer> server_;
    size_t reads_;
    redisContext* ctx_ = nullptr;
    std::vector<uint32_t> order_;
    std::vector<char> page_;
    uint64_t seed_ = 0, sum_ = 0;
};

} // namespace

SwapCase far_swap_in_rand(std::string name, size_t region_bytes, size_t budget_bytes, faultline::Config config)
{
    auto server = start_server();
    faultline::Config redis = config;
    redis.swap_path = server->url();
    SwapCase c = against_file(swap_in_rand(name, region_bytes, budget_bytes, redis),
        swap_in_rand(name, region_bytes, budget_bytes, config), server);
    c.setup = "one local redis-server against the local swap file";
    return c;
}

SwapCase far_swap_in_rand_hiredis(std::string name, size_t region_bytes, size_t budget_bytes, faultline::Config config)
{
    auto server = start_server();
    faultline::Config redis = config;
    redis.swap_path = server->url();
    SwapCase c = swap_in_rand(name, region_bytes, budget_bytes, redis);
    auto floor = std::make_unique<HiredisReader>(server, c.workload.units);
    c.workload.baseline_run = [f = floor.get()](char*) { return f->run(); };
    c.workload.baseline_verify = [f = floor.get()](const char*) { f->verify(); };
    c.baseline = std::move(floor);
    c.servers = server;
    c.setup = "one local redis-server: faultline's swap-ins against pipelined hiredis GETs";
    return c;
}

SwapCase far_heap_hotcold(std::string name, size_t region_bytes, size_t accesses, faultline::Config config)
{
    auto cluster = std::make_shared<RedisCluster>(3, 0);
    if (!cluster->unavailable().empty())
        throw Unavailable(cluster->unavailable());
    faultline::Config redis = config;
    redis.swap_path = cluster->url(0);
    // Clock on both sides: budget_hotcold_heap's own faultline side.
    SwapCase c = against_file(budget_hotcold_heap(name, region_bytes, accesses, redis),
        budget_hotcold_heap(name, region_bytes, accesses, config), cluster);
    c.setup = "a local Redis Cluster of 3 masters against the local swap file";
    return c;
}

} // namespace bench
