// os/psi_trigger.h — a memory-pressure (PSI) trigger the kernel signals.
//
// Writing "some 150000 2000000" to a memory.pressure file asks the kernel to
// raise POLLPRI on that descriptor whenever tasks stalled on memory for
// 150 ms within a 2 s window. Inside a cgroup v2 the cgroup's own
// memory.pressure is used (the pressure that counts is the cgroup's limit,
// not the machine's); otherwise /proc/pressure/memory. Unprivileged
// triggers need a window that is a multiple of 2 s on some kernels, and some
// kernels refuse triggers altogether (EINVAL, EPERM, EACCES): the caller
// falls back to no pressure trigger.
#pragma once

#include <faultline/result.h>

#include <string>

namespace faultline::os {

class PsiTrigger {
public:
    // Opens the trigger described by `spec` ("some|full <stall us> <window us>").
    static Result<PsiTrigger> open(const std::string& spec);
    // Where a trigger would be opened: the cgroup's memory.pressure (cgroup
    // v2) or /proc/pressure/memory.
    static std::string pressure_file();

    PsiTrigger(PsiTrigger&&) noexcept;
    PsiTrigger& operator=(PsiTrigger&&) noexcept;
    PsiTrigger(const PsiTrigger&) = delete;
    ~PsiTrigger();

    // Poll it for POLLPRI; POLLERR means the file went away (cgroup removed).
    int fd() const noexcept { return fd_; }
    const std::string& path() const noexcept { return path_; }

private:
    PsiTrigger(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    int fd_ = -1;
    std::string path_;
};

} // namespace faultline::os
