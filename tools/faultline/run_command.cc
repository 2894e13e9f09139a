#include "run_command.h"

#include "exit_codes.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <elf.h>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace faultline::cli {

namespace {

constexpr int kExitCannotRun = 126; // the shell's "found but cannot execute"
constexpr int kExitCommandNotFound = 127;

// The library to preload: $FAULTLINE_MALLOC_LIB if set, else the one built
// beside this binary when it runs from the build tree, else the installed
// one (both paths are known when the tool is built).
std::string preload_library()
{
    if (const char* env = getenv("FAULTLINE_MALLOC_LIB"); env && *env)
        return env;
    char self[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        if (!strcmp(self, FAULTLINE_CLI_BUILD_PATH))
            return FAULTLINE_MALLOC_BUILD_PATH;
    }
    return FAULTLINE_MALLOC_INSTALL_PATH;
}

// Where execvp would find `command` (a name with a slash is taken as is).
std::string resolve(const char* command)
{
    if (strchr(command, '/'))
        return access(command, F_OK) == 0 ? command : "";
    const char* path = getenv("PATH");
    std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
    for (size_t at = 0; at <= dirs.size();) {
        size_t end = dirs.find(':', at);
        if (end == std::string::npos)
            end = dirs.size();
        std::string candidate = (end > at ? dirs.substr(at, end - at) : ".") + "/" + command;
        if (access(candidate.c_str(), X_OK) == 0)
            return candidate;
        at = end + 1;
    }
    return "";
}

enum class Linkage { Dynamic, Static, Script, Unknown };

// A program the dynamic loader starts (it has a PT_INTERP header) honours
// LD_PRELOAD; a statically linked one never does, and running it would
// silently leave its heap where it always was. Scripts start an
// interpreter, which the loader starts.
Linkage linkage(const std::string& file)
{
    const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return Linkage::Unknown;
    unsigned char head[sizeof(Elf64_Ehdr)] = {};
    const ssize_t got = pread(fd, head, sizeof head, 0);
    Linkage result = Linkage::Unknown;
    if (got >= 2 && head[0] == '#' && head[1] == '!') {
        result = Linkage::Script;
    } else if (got == ssize_t(sizeof head) && !memcmp(head, ELFMAG, SELFMAG) && head[EI_CLASS] == ELFCLASS64) {
        Elf64_Ehdr eh;
        memcpy(&eh, head, sizeof eh);
        result = Linkage::Static;
        for (unsigned i = 0; i < eh.e_phnum; ++i) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, off_t(eh.e_phoff + uint64_t(i) * eh.e_phentsize)) != ssize_t(sizeof ph))
                break;
            if (ph.p_type == PT_INTERP) {
                result = Linkage::Dynamic;
                break;
            }
        }
    }
    close(fd);
    return result;
}

// "512M", "8G", "1048576" (the preload parses the same way); 0 if not.
unsigned long long parse_size(const char* text)
{
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-')
        return 0;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: return 0;
    }
    if (shift && (end[1] || n > (~0ull >> shift)))
        return 0;
    return n << shift;
}

// The swap directory must take a file now: refused here, before anything
// runs, rather than by the preload inside the program.
std::string check_swap_dir(const char* dir, unsigned long long least)
{
    struct stat st {};
    if (stat(dir, &st) != 0)
        return std::string(dir) + ": " + strerror(errno);
    if (!S_ISDIR(st.st_mode))
        return std::string(dir) + ": not a directory (the swap file is created, unlinked, inside it)";
    struct statvfs vfs {};
    if (statvfs(dir, &vfs) == 0) {
        if (vfs.f_flag & ST_RDONLY)
            return std::string(dir) + ": " + strerror(EROFS);
        if ((unsigned long long)vfs.f_bavail * vfs.f_frsize < least)
            return std::string(dir) + ": " + strerror(ENOSPC);
    }
    if (access(dir, W_OK | X_OK) != 0)
        return std::string(dir) + ": " + strerror(errno);
    return "";
}

int usage(const char* why)
{
    fprintf(stderr, "faultline run: %s\nusage: faultline %s\n", why, kRunSynopsis);
    return kExitUsage;
}

} // namespace

int run_command(std::span<char* const> args)
{
    bool stats = false;
    const char* heap_size = nullptr;
    const char* budget = nullptr;
    const char* swap = nullptr;
    size_t i = 0;
    for (; i < args.size(); ++i) {
        const char* a = args[i];
        if (!strcmp(a, "--")) {
            ++i;
            break;
        }
        if (!strcmp(a, "--stats"))
            stats = true;
        else if (!strcmp(a, "--heap-size")) {
            if (i + 1 >= args.size())
                return usage("--heap-size needs a size (e.g. 8G)");
            heap_size = args[++i];
        } else if (!strcmp(a, "--budget")) {
            if (i + 1 >= args.size())
                return usage("--budget needs a size (e.g. 512M)");
            budget = args[++i];
        } else if (!strcmp(a, "--swap")) {
            if (i + 1 >= args.size())
                return usage("--swap needs a directory or a redis:// URL");
            swap = args[++i];
        } else if (a[0] == '-')
            return usage((std::string("unknown option ") + a).c_str());
        else
            break; // the command, without a "--" before it
    }
    if (i >= args.size())
        return usage("no command to run");
    const char* command = args[i];
    if (heap_size) {
        // Checked here so a typo is a usage error, not the preload's refusal
        // inside the program (the preload checks the same way).
        char* end = nullptr;
        errno = 0;
        const unsigned long long n = strtoull(heap_size, &end, 10);
        const bool suffix_ok = !*end || (strchr("kKmMgGtT", *end) && !end[1]);
        if (errno || end == heap_size || heap_size[0] == '-' || !suffix_ok || n == 0)
            return usage((std::string("--heap-size ") + heap_size + ": expected a size such as 512M or 8G").c_str());
    }

    // The least budget is one eviction batch (64 pages), as the runtime's.
    const unsigned long long batch = 64ull * (unsigned long long)sysconf(_SC_PAGESIZE);
    if (budget) {
        const unsigned long long n = parse_size(budget);
        if (n == 0)
            return usage((std::string("--budget ") + budget + ": expected a size such as 512M or 8G").c_str());
        if (n < batch)
            return usage((std::string("--budget ") + budget + ": less than one eviction batch (" + std::to_string(batch >> 10)
                + "K)").c_str());
    }
    if (swap && !budget)
        return usage("--swap needs --budget (without a budget nothing is swapped)");
    // A redis:// URL goes to the preload as it is: the runtime connects and
    // authenticates at start and refuses the program with the server's
    // reason (the tool has no Redis client of its own).
    if (swap && strncmp(swap, "redis://", 8) != 0) {
        if (const std::string why = check_swap_dir(swap, batch); !why.empty()) {
            fprintf(stderr, "faultline run: --swap %s\n", why.c_str());
            return kExitUsage;
        }
    }

    const std::string program = resolve(command);
    if (program.empty()) {
        fprintf(stderr, "faultline run: %s: command not found\n", command);
        return kExitCommandNotFound;
    }
    switch (linkage(program)) {
    case Linkage::Static:
        fprintf(stderr, "faultline run: %s is statically linked: the preloaded heap cannot apply to it; nothing was run\n",
            program.c_str());
        return kExitCannotRun;
    case Linkage::Unknown:
        fprintf(stderr, "faultline run: %s is not a program this system can start with the preloaded heap; nothing was run\n",
            program.c_str());
        return kExitCannotRun;
    case Linkage::Dynamic:
    case Linkage::Script:
        break;
    }
    const std::string library = preload_library();
    if (access(library.c_str(), R_OK) != 0) {
        fprintf(stderr, "faultline run: %s: %s (set FAULTLINE_MALLOC_LIB to the library)\n", library.c_str(), strerror(errno));
        return kExitNotFound;
    }

    // Preloaded first, before whatever the caller preloads already.
    std::string preload = library;
    if (const char* old = getenv("LD_PRELOAD"); old && *old)
        preload += std::string(":") + old;
    setenv("LD_PRELOAD", preload.c_str(), 1);
    if (heap_size)
        setenv("FAULTLINE_HEAP_SIZE", heap_size, 1);
    // Every process of the command gets a budget of its own (and a swap
    // file of its own in the directory): docs/heap.md.
    if (budget)
        setenv("FAULTLINE_BUDGET", budget, 1);
    if (swap)
        setenv("FAULTLINE_SWAP", swap, 1);
    // exec keeps the process id: the statistics are this process's only,
    // not those of every program it starts in turn.
    if (stats)
        setenv("FAULTLINE_HEAP_STATS", ("pid:" + std::to_string(getpid())).c_str(), 1);
    // The span is the tail of main's argv, so it ends with argv's NULL.
    execv(program.c_str(), args.subspan(i).data());
    fprintf(stderr, "faultline run: cannot run %s: %s\n", program.c_str(), strerror(errno));
    return errno == ENOENT ? kExitCommandNotFound : kExitCannotRun;
}

} // namespace faultline::cli
