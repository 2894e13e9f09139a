#include "os/psi_trigger.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace faultline::os {

namespace {

// The mount point of the cgroup v2 hierarchy ("/sys/fs/cgroup", or
// "/sys/fs/cgroup/unified" on hybrid systems), or "".
std::string cgroup2_mount()
{
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // ... mount-point ... - fstype source options
        auto dash = line.find(" - ");
        if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0)
            continue;
        std::istringstream fields(line.substr(0, dash));
        std::string id, parent, devno, root, mount;
        if (fields >> id >> parent >> devno >> root >> mount)
            return mount;
    }
    return {};
}

// This process's cgroup v2 path ("0::/a/b"), or "".
std::string cgroup2_path()
{
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("0::", 0) == 0)
            return line.substr(3);
    return {};
}

} // namespace

std::string PsiTrigger::pressure_file()
{
    const std::string mount = cgroup2_mount(), path = cgroup2_path();
    if (!mount.empty() && !path.empty() && path != "/") {
        std::string file = mount + path + "/memory.pressure";
        if (access(file.c_str(), R_OK) == 0)
            return file;
    }
    return "/proc/pressure/memory";
}

Result<PsiTrigger> PsiTrigger::open(const std::string& spec)
{
    if (spec.empty())
        return fail(EINVAL, "empty pressure trigger");
    std::string path = pressure_file();
    int fd = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return failf(errno, "cannot open %s: %s", path.c_str(), strerror(errno));
    // The kernel parses the whole write, terminator included.
    if (write(fd, spec.c_str(), spec.size() + 1) < 0) {
        int err = errno;
        close(fd);
        return failf(err, "the kernel refused the pressure trigger '%s' on %s: %s", spec.c_str(), path.c_str(), strerror(err));
    }
    return PsiTrigger(fd, std::move(path));
}

PsiTrigger::PsiTrigger(PsiTrigger&& o) noexcept
    : fd_(o.fd_)
    , path_(std::move(o.path_))
{
    o.fd_ = -1;
}

PsiTrigger& PsiTrigger::operator=(PsiTrigger&& o) noexcept
{
    if (this != &o) {
        if (fd_ >= 0)
            close(fd_);
        fd_ = o.fd_;
        path_ = std::move(o.path_);
        o.fd_ = -1;
    }
    return *this;
}

PsiTrigger::~PsiTrigger()
{
    if (fd_ >= 0)
        close(fd_);
}

} // namespace faultline::os
