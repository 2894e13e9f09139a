// runtime/fork_guard.h — tells a runtime whether it is running in the process
// that created it.
//
// A fork child inherits a copy of every runtime object but none of its
// handler threads, and shares the parent's open files: the userfaultfd, the
// eventfd that stops the handler threads, the memfds of shared regions. A
// child that used its copy could stop the parent's fault service (one write
// to the shared eventfd) or punch holes in the parent's shared memory. So
// the child's copy is inert (docs/api.md, "fork"): every call returns
// ECHILD, and destroying it releases only the child's own resources.
//
// The test is a generation number that a pthread_atfork child handler
// increments, compared with the one the runtime was created in: cheaper
// than getpid(2), and immune to a descendant that inherits a recycled pid.
#pragma once

#include <cstdint>

namespace faultline {

class ForkGuard {
public:
    ForkGuard() noexcept;
    // True in the process that constructed this guard, false in a fork child.
    bool in_owner() const noexcept { return generation_ == current(); }

    // The number of forks this process descends through (0 in the original
    // process), as seen by pthread_atfork.
    static uint64_t current() noexcept;

private:
    uint64_t generation_;
};

} // namespace faultline
