// durability-reader FILE: prints FILE's size (a decimal line) and then its
// bytes to stdout. tests/durability_test.cc runs it to read a file back "in
// a fresh process": a program that never linked faultline nor mapped the
// file, started after the process that wrote it has ended.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

bool write_all(const char* p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= size_t(w);
    }
    return true;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: durability-reader FILE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "durability-reader: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%lld\n", (long long)st.st_size);
    if (!write_all(line, size_t(n)))
        return 1;
    char buf[65536];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "durability-reader: read: %s\n", strerror(errno));
            return 1;
        }
        if (r == 0)
            return 0;
        if (!write_all(buf, size_t(r)))
            return 1;
    }
}
