// bench/cow_workloads.cc — the copy-on-write cases.
#include "cow_workloads.h"

#include "cow_mappers.h"
#include "purge_mappers.h"
#include "waiting_child.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {

namespace {

void write_every_page(char* base, size_t bytes, char value)
{
    for (size_t off = 0; off < bytes; off += page_size())
        base[off] = value;
}

void check_every_page(const char* base, size_t bytes, char value)
{
    for (size_t off = 0; off < bytes; off += page_size())
        if (base[off] != value)
            fail("byte at offset " + std::to_string(off) + " is " + std::to_string(int(base[off])) + ", expected " + std::to_string(int(value)));
}

// AnonPages + Shmem, in bytes: physical memory of anonymous and shared
// pages, each page once however many mappings it has.
long long anon_and_shmem_bytes()
{
    FILE* f = fopen("/proc/meminfo", "r");
    if (!f)
        fail("cannot read /proc/meminfo");
    char line[256];
    long long anon = -1, shmem = -1;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "AnonPages: %lld kB", &anon);
        sscanf(line, "Shmem: %lld kB", &shmem);
    }
    fclose(f);
    if (anon < 0 || shmem < 0)
        fail("/proc/meminfo has no AnonPages or Shmem");
    return (anon + shmem) * 1024;
}

} // namespace

CowCase clone_region(std::string name, size_t bytes, const faultline::Config& config)
{
    auto fl = std::make_unique<ClonableMapper>(config, [](faultline::Runtime&, char* base, size_t n) { write_every_page(base, n, 1); });
    auto native = std::make_unique<PreparedNativeMapper>([](char* base, size_t n) { write_every_page(base, n, 1); });
    CowCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ms";
    w.bytes = bytes;
    w.units = 1000000;
    w.run = [m = fl.get(), bytes](char* base) {
        faultline::Runtime& rt = m->runtime();
        const uint64_t t0 = now_ns();
        auto clone = rt.clone(base);
        const uint64_t elapsed = now_ns() - t0;
        if (!clone)
            fail(std::string("clone failed: ") + clone.error().message());
        check_every_page(static_cast<const char*>(*clone), bytes, 1);
        (void)rt.unmap(*clone, bytes);
        return elapsed;
    };
    w.verify = [bytes](const char* base) { check_every_page(base, bytes, 1); };
    w.baseline_run = [](char*) {
        const uint64_t t0 = now_ns();
        WaitingChild child;
        const uint64_t elapsed = now_ns() - t0;
        child.release();
        return elapsed;
    };
    w.baseline_verify = w.verify;
    c.faultline = std::move(fl);
    c.baseline = std::move(native);
    return c;
}

CowCase cow_write_after_clone(std::string name, size_t bytes, const faultline::Config& config)
{
    auto fl = std::make_unique<ClonableMapper>(config, [](faultline::Runtime&, char* base, size_t n) { write_every_page(base, n, 1); });
    auto native = std::make_unique<PreparedNativeMapper>([](char* base, size_t n) { write_every_page(base, n, 1); });
    CowCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ns/page";
    w.bytes = bytes;
    w.units = bytes / page_size();
    w.run = [m = fl.get(), bytes](char* base) {
        faultline::Runtime& rt = m->runtime();
        auto clone = rt.clone(base);
        if (!clone)
            fail(std::string("clone failed: ") + clone.error().message());
        const uint64_t t0 = now_ns();
        write_every_page(base, bytes, 2);
        const uint64_t elapsed = now_ns() - t0;
        check_every_page(static_cast<const char*>(*clone), bytes, 1);
        (void)rt.unmap(*clone, bytes);
        return elapsed;
    };
    w.verify = [bytes](const char* base) { check_every_page(base, bytes, 2); };
    w.baseline_run = [bytes](char* base) {
        WaitingChild child;
        const uint64_t t0 = now_ns();
        write_every_page(base, bytes, 2);
        const uint64_t elapsed = now_ns() - t0;
        child.release();
        return elapsed;
    };
    w.baseline_verify = w.verify;
    c.faultline = std::move(fl);
    c.baseline = std::move(native);
    return c;
}

CowCase clone_written_10pct(std::string name, size_t bytes, bool scattered, const faultline::Config& config)
{
    auto fl = std::make_unique<ClonableMapper>(config, [](faultline::Runtime&, char* base, size_t n) { write_every_page(base, n, 1); });
    auto native = std::make_unique<PreparedNativeMapper>([](char* base, size_t n) { write_every_page(base, n, 1); });
    CowCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ms";
    w.bytes = bytes;
    w.units = 1000000;
    w.run = [m = fl.get(), bytes, scattered](char* base) {
        faultline::Runtime& rt = m->runtime();
        const size_t page = page_size();
        // Frozen (the first repetition's freeze; later ones clone a view
        // already frozen), then a tenth written since.
        auto first = rt.clone(base);
        if (!first)
            fail(std::string("clone failed: ") + first.error().message());
        (void)rt.unmap(*first, bytes);
        if (scattered)
            for (size_t off = 0; off < bytes; off += 10 * page)
                base[off] = 2;
        else
            for (size_t off = 0; off < bytes / 10; off += page)
                base[off] = 2;
        const uint64_t t0 = now_ns();
        auto clone = rt.clone(base);
        const uint64_t elapsed = now_ns() - t0;
        if (!clone)
            fail(std::string("clone failed: ") + clone.error().message());
        const char* copy = static_cast<const char*>(*clone);
        for (size_t off = 0; off < bytes; off += page) {
            const bool written = scattered ? off % (10 * page) == 0 : off < bytes / 10;
            if (copy[off] != (written ? 2 : 1))
                fail("the clone's byte at offset " + std::to_string(off) + " is wrong");
        }
        (void)rt.unmap(*clone, bytes);
        return elapsed;
    };
    w.verify = [bytes, scattered](const char* base) {
        const size_t page = page_size();
        for (size_t off = 0; off < bytes; off += page) {
            const bool written = scattered ? off % (10 * page) == 0 : off < bytes / 10;
            if (base[off] != (written ? 2 : 1))
                fail("byte at offset " + std::to_string(off) + " is wrong");
        }
    };
    w.baseline_run = [](char*) {
        const uint64_t t0 = now_ns();
        WaitingChild child;
        const uint64_t elapsed = now_ns() - t0;
        child.release();
        return elapsed;
    };
    w.baseline_verify = [bytes](const char* base) { check_every_page(base, bytes, 1); };
    c.faultline = std::move(fl);
    c.baseline = std::move(native);
    return c;
}

CowCase rollback_10pct(std::string name, size_t bytes, const faultline::Config& config)
{
    const size_t page = page_size();
    auto touch_tenth = [page](char* base, size_t n) {
        for (size_t off = 0; off < n; off += 10 * page)
            base[off] = 9;
    };
    auto fl = std::make_unique<ClonableMapper>(config, [](faultline::Runtime&, char* base, size_t n) { write_every_page(base, n, 1); });
    // The baseline's saved copy, made once and reused by every repetition.
    auto saved = std::make_shared<std::vector<char>>();
    auto native = std::make_unique<PreparedNativeMapper>([saved](char* base, size_t n) {
        write_every_page(base, n, 1);
        if (saved->size() != n) {
            saved->assign(n, 0);
            memcpy(saved->data(), base, n);
        }
    });
    CowCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ms";
    w.bytes = bytes;
    w.units = 1000000;
    w.run = [m = fl.get(), bytes, touch_tenth](char* base) {
        faultline::Runtime& rt = m->runtime();
        auto snap = rt.snapshot(base);
        if (!snap)
            fail(std::string("snapshot failed: ") + snap.error().message());
        touch_tenth(base, bytes);
        const uint64_t t0 = now_ns();
        auto back = rt.rollback(base, *snap);
        const uint64_t elapsed = now_ns() - t0;
        if (!back)
            fail(std::string("rollback failed: ") + back.error().message());
        return elapsed;
    };
    w.verify = [bytes](const char* base) { check_every_page(base, bytes, 1); };
    w.baseline_run = [bytes, saved, touch_tenth](char* base) {
        touch_tenth(base, bytes);
        const uint64_t t0 = now_ns();
        memcpy(base, saved->data(), bytes);
        return now_ns() - t0;
    };
    w.baseline_verify = w.verify;
    c.faultline = std::move(fl);
    c.baseline = std::move(native);
    return c;
}

Result clone_read_growth(std::string name, size_t bytes, const faultline::Config& config, unsigned runs)
{
    Result r;
    r.name = std::move(name);
    r.unit = "pages/1000";
    r.baseline_name = "fork-child-reads";
    r.bytes = bytes;
    r.units = bytes / page_size();
    r.runs = runs;
    const double per_mille = 1000.0 / double(bytes);
    try {
        for (unsigned i = 0; i < runs; ++i) {
            {
                ClonableMapper m(config, [](faultline::Runtime&, char* base, size_t n) { write_every_page(base, n, 1); });
                char* base = m.map(bytes, false);
                auto clone = m.runtime().clone(base);
                if (!clone)
                    fail(std::string("clone failed: ") + clone.error().message());
                const long long before = anon_and_shmem_bytes();
                check_every_page(static_cast<const char*>(*clone), bytes, 1);
                r.faultline_runs.push_back(std::max(0.0, double(anon_and_shmem_bytes() - before) * per_mille));
                m.unmap(base, bytes);
            }
            {
                PreparedNativeMapper m([](char* base, size_t n) { write_every_page(base, n, 1); });
                char* base = m.map(bytes, false);
                int done[2], go[2];
                if (pipe(done) != 0 || pipe(go) != 0)
                    fail("pipe failed");
                const long long before = anon_and_shmem_bytes();
                pid_t pid = fork();
                if (pid == 0) {
                    volatile long sum = 0;
                    for (size_t off = 0; off < bytes; off += page_size())
                        sum = sum + base[off];
                    (void)!write(done[1], "x", 1);
                    char ch;
                    (void)!read(go[0], &ch, 1);
                    _exit(0);
                }
                char ch;
                (void)!read(done[0], &ch, 1);
                // The child's own stack and page tables are not pages of the
                // region: page tables are not in AnonPages, and a few stack
                // pages round to nothing per thousand.
                r.baseline_runs.push_back(std::max(0.0, double(anon_and_shmem_bytes() - before) * per_mille));
                (void)!write(go[1], "x", 1);
                waitpid(pid, nullptr, 0);
                for (int fd : { done[0], done[1], go[0], go[1] })
                    close(fd);
                m.unmap(base, bytes);
            }
        }
    } catch (const Failure& e) {
        r.error = e.what();
        return r;
    }
    r.faultline = median(r.faultline_runs);
    r.baseline = median(r.baseline_runs);
    // Both are normally (close to) zero: a page counts only when one side
    // duplicated something. Equal within a page per thousand: 1.
    r.ratio = std::fabs(r.faultline - r.baseline) < 1.0 ? 1.0 : r.baseline > 0 ? r.faultline / r.baseline : INFINITY;
    return r;
}

} // namespace bench
