// ./dev demo: the runtime at work, end to end.
//
//  1. maps a 1 GiB anonymous region and touches 256 MiB of it from 4 threads;
//  2. makes part of it read-only (the region splits) and shows a write there
//     is refused with SIGSEGV, as with mprotect(2);
//  3. unmaps a second region while another thread is faulting in it: the
//     faulting thread sees SIGSEGV after the unmap, never a hang or stale data;
//  4. maps a 64 MiB file (shared, read-write), reads it through the region,
//     changes a byte in every 1 MiB, syncs, and reads the file back with
//     pread(2): the writes are there, and only the written pages were written;
//  5. prints the region table (Runtime::to_json) and the fault counters.
#include <faultline/runtime.h>

#include <atomic>
#include <chrono>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace faultline;

namespace {

thread_local sigjmp_buf* t_jump = nullptr;

void on_segv(int sig)
{
    if (t_jump)
        siglongjmp(*t_jump, sig);
    signal(sig, SIG_DFL);
    raise(sig);
}

// Touches `p` for writing; returns false if that raised SIGSEGV.
bool try_write(volatile char* p, char value)
{
    sigjmp_buf jump;
    t_jump = &jump;
    if (sigsetjmp(jump, 1) != 0) {
        t_jump = nullptr;
        return false;
    }
    *p = value;
    t_jump = nullptr;
    return true;
}

template <typename T>
T check(Result<T> r, const char* what)
{
    if (!r) {
        std::fprintf(stderr, "%s failed: %s\n", what, r.error().message());
        std::exit(1);
    }
    if constexpr (!std::is_void_v<T>)
        return std::move(*r);
}

} // namespace

int main()
{
    struct sigaction sa {};
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, nullptr);

    auto rt = check(Runtime::create(), "Runtime::create");
    std::printf("faultline runtime: arena %p + %zu GiB, features:", rt->arena_base(), rt->arena_size() >> 30);
    for (auto& f : rt->features())
        std::printf(" %s", f.c_str());
    std::printf("%s\n", rt->user_mode_only() ? " (user-mode-only)" : "");

    // 1. A large region touched by several threads.
    const size_t big = size_t(1) << 30, touched = size_t(256) << 20, page = 4096;
    auto* data = static_cast<char*>(check(rt->map_anonymous({ .size = big, .name = "demo-data" }), "map"));
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < 4; ++t) {
        workers.emplace_back([=] {
            for (size_t off = size_t(t) * page; off < touched; off += 4 * page)
                data[off] = char('a' + t);
        });
    }
    for (auto& w : workers)
        w.join();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    size_t bad = 0;
    for (size_t off = 0; off < touched; off += page)
        bad += data[off] != char('a' + (off / page) % 4);
    std::printf("1. 4 threads wrote %zu MiB (%zu pages) in %.1f ms; %zu wrong bytes\n", touched >> 20, touched / page, ms, bad);

    // 2. Part of it read-only: the region splits in three.
    check(rt->protect(data + (64 << 20), 64 << 20, Access::Read), "protect");
    bool write_ok = try_write(data + (64 << 20) + 100, 'z');
    std::printf("2. made [64 MiB, 128 MiB) read-only: regions now %zu; write there -> %s; read there -> '%c'\n",
        rt->stats().region_count, write_ok ? "allowed (WRONG)" : "SIGSEGV (refused)", data[(64 << 20) + page]);

    // 3. Unmap while another thread faults in the region.
    const size_t victim_size = size_t(128) << 20;
    auto* victim = static_cast<char*>(check(rt->map_anonymous({ .size = victim_size, .name = "demo-victim" }), "map victim"));
    std::atomic<bool> go { false };
    std::atomic<size_t> written { 0 }, refused { 0 };
    std::thread faulter([&] {
        while (!go.load()) { }
        for (size_t off = 0; off < victim_size; off += page) {
            if (try_write(victim + off, 'v'))
                written.fetch_add(1);
            else
                refused.fetch_add(1);
        }
    });
    go.store(true);
    // Let the faulter get well into the region before pulling it away.
    while (written.load() < 2000)
        std::this_thread::yield();
    check(rt->unmap(victim, victim_size), "unmap");
    faulter.join();
    std::printf("3. unmapped a region while a thread faulted in it: %zu pages written before, %zu refused (SIGSEGV) after; no hang\n",
        written.load(), refused.load());

    // 4. A file region: mmap(2)'s MAP_SHARED, served by faultline.
    const size_t file_size = size_t(64) << 20;
    char file_path[] = "/tmp/faultline-demo-XXXXXX";
    int fd = mkstemp(file_path);
    if (fd < 0) {
        std::perror("mkstemp");
        return 1;
    }
    unlink(file_path); // gone when the runtime and this descriptor close it
    {
        std::vector<char> chunk(1 << 20);
        for (size_t off = 0; off < file_size; off += chunk.size()) {
            for (size_t i = 0; i < chunk.size(); ++i)
                chunk[i] = char((off + i) * 131 >> 9);
            if (pwrite(fd, chunk.data(), chunk.size(), off_t(off)) != ssize_t(chunk.size())) {
                std::perror("pwrite");
                return 1;
            }
        }
    }
    auto* file = static_cast<char*>(check(rt->map_file(fd, { .length = file_size, .access = Access::ReadWrite, .name = "demo-file" }), "map_file"));
    t0 = std::chrono::steady_clock::now();
    size_t file_bad = 0;
    for (size_t off = 0; off < file_size; off += 512)
        file_bad += file[off] != char(off * 131 >> 9);
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    for (size_t off = 0; off < file_size; off += size_t(1) << 20)
        file[off + 7] = '!';
    const uint64_t dirty = check(rt->region_stats(file), "region_stats").dirty_pages;
    check(rt->sync(file, file_size), "sync");
    const RegionStats fs = check(rt->region_stats(file), "region_stats");
    for (size_t off = 0; off < file_size; off += size_t(1) << 20) {
        char c = 0;
        file_bad += pread(fd, &c, 1, off_t(off + 7)) != 1 || c != '!';
    }
    close(fd);
    std::printf("4. read a 64 MiB file through a region in %.1f ms (%llu faults, %llu KiB read), wrote 64 bytes: %llu dirty pages,\n"
                "   sync wrote %llu KiB; pread sees the writes; %zu wrong bytes\n",
        ms, (unsigned long long)fs.inode_faults, (unsigned long long)(fs.file_bytes_read >> 10), (unsigned long long)dirty,
        (unsigned long long)(fs.file_bytes_written >> 10), file_bad);

    // 5. What the runtime saw.
    auto st = rt->stats();
    std::printf("5. faults: %llu events, %llu deduplicated, %llu pages installed in %llu batches, %llu stale (unmapped in flight)\n",
        (unsigned long long)st.fault_events, (unsigned long long)st.faults_deduplicated, (unsigned long long)st.pages_installed,
        (unsigned long long)st.batches, (unsigned long long)st.stale_faults);
    std::printf("   per thread:");
    for (auto& t : st.threads)
        std::printf(" tid %d: %llu", t.tid, (unsigned long long)t.faults);
    std::printf("\n\n   region table:\n   %-14s %10s %-12s %-4s %-5s %10s %10s %8s %8s  %s\n", "address", "size KiB", "name", "acc",
        "flags", "resident", "zero-map", "faults", "pages", "page map (first 48 cells; . absent z zero-page D private)");
    // The per-page maps come from the JSON report (same address order).
    const std::string json = rt->to_json();
    size_t map_at = 0;
    for (const RegionStats& r : rt->regions()) {
        std::string access = std::string(has(r.access, Access::Read) ? "r" : "-") + (has(r.access, Access::Write) ? "w" : "-")
            + (has(r.access, Access::Execute) ? "x" : "-");
        std::string flags = std::string(has(r.flags, RegionFlags::Stack) ? "S" : "") + (has(r.flags, RegionFlags::Immutable) ? "I" : "")
            + (has(r.flags, RegionFlags::NoReserve) ? "N" : "");
        std::printf("   %#-14lx %10zu %-12s %-4s %-5s %9zuK %9zuK %8llu %8llu  ", (unsigned long)r.base, r.size >> 10, r.name.c_str(),
            access.c_str(), flags.empty() ? "-" : flags.c_str(), r.amount_resident >> 10, r.amount_zero_mapped >> 10,
            (unsigned long long)r.zero_faults, (unsigned long long)r.pages_installed);
        map_at = json.find("\"page_map\":\"", map_at);
        if (map_at != std::string::npos) {
            map_at += 12;
            std::string map = json.substr(map_at, json.find('"', map_at) - map_at);
            std::printf("%s", map.substr(0, 48).c_str());
        }
        std::printf("\n");
    }
    const char* json_path = "demo-regions.json";
    if (FILE* f = std::fopen(json_path, "w")) {
        std::fputs(json.c_str(), f);
        std::fclose(f);
        std::printf("   full table with per-page maps (Runtime::to_json) written to %s\n", json_path);
    }
    return bad == 0 && file_bad == 0 && !write_ok ? 0 : 1;
}
