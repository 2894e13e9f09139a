#include "io/delayed_completion.h"

#include "support/runtime_thread.h"

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <pthread.h>
#include <thread>

namespace faultline::io {

namespace {

using Clock = std::chrono::steady_clock;

struct Entry {
    Operation op; // first: the completion finds its entry from it
    enum class State : uint8_t { Free, InFlight, Due } state = State::Free;
    Operation* target = nullptr;
    unsigned delay_ms = 0;
    int32_t result = 0;
    Clock::time_point due {};
};

class Delayer {
public:
    static constexpr size_t kEntries = 256;

    Operation* claim(Operation* target, unsigned delay_ms) noexcept
    {
        std::lock_guard g(lock_);
        if (!started_ && !start())
            return nullptr;
        for (Entry& e : entries_)
            if (e.state == Entry::State::Free) {
                e.state = Entry::State::InFlight;
                e.op.complete = &Delayer::arrived;
                e.target = target;
                e.delay_ms = delay_ms;
                return &e.op;
            }
        return nullptr;
    }
    void cancel(Operation* op) noexcept
    {
        std::lock_guard g(lock_);
        reinterpret_cast<Entry*>(op)->state = Entry::State::Free;
    }

private:
    static void arrived(Operation* op, int32_t result) noexcept;
    bool start() noexcept
    {
        // Like every runtime thread, the timer runs no application signal
        // handler.
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        try {
            std::thread(&Delayer::run, this).detach();
            started_ = true;
        } catch (const std::exception&) {
        }
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        return started_;
    }
    void run() noexcept
    {
        begin_runtime_thread("faultline-delay");
        std::unique_lock g(lock_);
        for (;;) {
            Entry* next = nullptr;
            for (Entry& e : entries_)
                if (e.state == Entry::State::Due && (!next || e.due < next->due))
                    next = &e;
            if (!next) {
                // Nothing claimed at all: the thread ends (the next claim
                // starts another). A process-wide thread left running would
                // make every later fork(2) a multi-threaded one — which
                // ThreadSanitizer refuses in a child that starts a runtime.
                bool idle = true;
                for (const Entry& e : entries_)
                    idle = idle && e.state == Entry::State::Free;
                if (idle) {
                    started_ = false;
                    return;
                }
                ready_.wait(g);
                continue;
            }
            if (Clock::now() < next->due) {
                ready_.wait_until(g, next->due);
                continue;
            }
            Operation* target = next->target;
            const int32_t result = next->result;
            next->state = Entry::State::Free;
            g.unlock();
            target->complete(target, result);
            g.lock();
        }
    }

    std::mutex lock_;
    std::condition_variable ready_;
    bool started_ = false;
    Entry entries_[kEntries];

};

// Never destroyed: its detached thread may still wait on it at exit.
Delayer& delayer() noexcept
{
    static Delayer* d = new Delayer;
    return *d;
}

void Delayer::arrived(Operation* op, int32_t result) noexcept
{
    Delayer& d = delayer();
    {
        std::lock_guard g(d.lock_);
        Entry* e = reinterpret_cast<Entry*>(op);
        e->result = result;
        e->due = Clock::now() + std::chrono::milliseconds(e->delay_ms);
        e->state = Entry::State::Due;
        // The thread may have ended between the claim and now (it ends only
        // when nothing is claimed, so this is for safety): it must run.
        if (!d.started_)
            (void)d.start();
    }
    d.ready_.notify_one();
}

} // namespace

Operation* delay_completion(Operation* op, unsigned delay_ms) noexcept { return delayer().claim(op, delay_ms); }

void cancel_delayed(Operation* delayed) noexcept { delayer().cancel(delayed); }

} // namespace faultline::io
