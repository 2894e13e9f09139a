// support/runtime_thread.h — the first thing every thread the runtime
// starts does.
//
// It names the thread (ps, /proc/PID/task/*/comm and debuggers show
// faultline-uffd, faultline-evict, ...) and calls the hook an embedding
// allocator registered with faultline::set_runtime_thread_hook(). The
// preloaded heap (lib/heap) uses it to keep the runtime's own threads out of
// the memory the runtime serves: a handler thread that allocated from the
// heap it serves could fault on its own allocation and wait for itself.
#pragma once

#include <faultline/result.h>

#include <csignal>
#include <cstring>
#include <system_error>
#include <thread>
#include <utility>

namespace faultline {

void begin_runtime_thread(const char* name) noexcept;

// Blocks every signal in the calling thread for its lifetime; a thread
// started meanwhile inherits the mask.
class AllSignalsBlocked {
public:
    AllSignalsBlocked() noexcept;
    ~AllSignalsBlocked();
    AllSignalsBlocked(const AllSignalsBlocked&) = delete;
    AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;

private:
    sigset_t old_;
};

// Starts `body` on a new thread that runs no application signal handler: a
// runtime thread interrupted by one that touches memory the runtime serves
// could wait for itself. EAGAIN when the system refuses a thread.
template <class Body>
Result<std::thread> start_runtime_thread(const char* what, Body&& body)
{
    AllSignalsBlocked blocked;
    try {
        return std::thread(std::forward<Body>(body));
    } catch (const std::system_error& e) {
        return failf(EAGAIN, "cannot start the %s thread: %s", what, e.what());
    }
}

} // namespace faultline
