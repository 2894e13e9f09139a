// Without privilege: a process that is not root and has no capabilities
// either gets a user-mode-only userfaultfd (with its documented limit) or
// fails at once with a message that names the fix.
#include "test_support.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace faultline;
using faultline::testing::kPage;

namespace {

constexpr uid_t kNobody = 65534;

// Drops to nobody:nogroup with no supplementary groups; exits 3 if that is
// impossible (then the parent test skips).
void drop_privileges()
{
    if (setgroups(0, nullptr) != 0 || setresgid(kNobody, kNobody, kNobody) != 0 || setresuid(kNobody, kNobody, kNobody) != 0) {
        fprintf(stderr, "cannot drop privileges: %s\n", strerror(errno));
        _exit(3);
    }
}

void unprivileged_auto()
{
    drop_privileges();
    auto rt = Runtime::create({ .arena_size = size_t(1) << 30 });
    if (!rt) {
        const std::string& m = rt.error().message();
        bool names_fix = m.find("vm.unprivileged_userfaultfd") != std::string::npos && m.find("/dev/userfaultfd") != std::string::npos
            && m.find("CAP_SYS_PTRACE") != std::string::npos;
        fprintf(stderr, "refused: %s\n", m.c_str());
        _exit(names_fix ? 10 : 1);
    }
    auto r = (*rt)->map_anonymous({ .size = 64 * kPage });
    if (!r)
        _exit(2);
    auto* p = static_cast<char*>(*r);
    p[0] = 'u';
    if (p[0] != 'u')
        _exit(4);
    if ((*rt)->user_mode_only()) {
        // The documented limit: the kernel's own accesses to an unpopulated
        // page are not served, so read(2) into it fails with EFAULT.
        // (Page 40 is outside the fault-around window of the touch above.)
        int fd = open("/proc/self/exe", O_RDONLY);
        ssize_t n = read(fd, p + 40 * kPage, 16);
        bool efault = n < 0 && errno == EFAULT;
        // After a user-mode touch, the same read works.
        p[40 * kPage] = 1;
        ssize_t m = pread(fd, p + 40 * kPage, 16, 0);
        fprintf(stderr, "user-mode-only: read into unpopulated page -> %s\n", efault ? "EFAULT" : "unexpected");
        _exit(efault && m == 16 ? 20 : 5);
    }
    fprintf(stderr, "full userfaultfd without privilege\n");
    _exit(30);
}

void unprivileged_full_only()
{
    drop_privileges();
    auto rt = Runtime::create({ .arena_size = size_t(1) << 30, .uffd_mode = Config::UffdMode::Full });
    if (rt)
        _exit(30); // the machine lets unprivileged users have a full uffd
    const std::string& m = rt.error().message();
    fprintf(stderr, "refused: %s\n", m.c_str());
    bool names_fix = rt.error().code() == EPERM && m.find("vm.unprivileged_userfaultfd") != std::string::npos
        && m.find("CAP_SYS_PTRACE") != std::string::npos;
    _exit(names_fix ? 10 : 1);
}

int run_in_child(void (*fn)())
{
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(99);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace

TEST(Unprivileged, AutoModeWorksOrNamesTheFix)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "needs root to switch to an unprivileged user";
    int code = run_in_child(unprivileged_auto);
    if (code == 3)
        GTEST_SKIP() << "this machine does not allow dropping to uid 65534";
    // 20: user-mode-only works with the EFAULT limit; 30: full uffd allowed
    // (vm.unprivileged_userfaultfd=1 or /dev/userfaultfd access); 10: refused
    // with the fix named. Anything else is a failure.
    EXPECT_TRUE(code == 20 || code == 30 || code == 10) << "child exit " << code;
}

TEST(Unprivileged, FullModeRefusedWithTheFix)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "needs root to switch to an unprivileged user";
    int code = run_in_child(unprivileged_full_only);
    if (code == 3)
        GTEST_SKIP() << "this machine does not allow dropping to uid 65534";
    if (code == 30)
        GTEST_SKIP() << "unprivileged full userfaultfd is allowed on this machine (vm.unprivileged_userfaultfd=1)";
    EXPECT_EQ(code, 10);
}
