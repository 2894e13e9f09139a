// bench/main.cc — faultline-bench: faultline against its baselines.
//
//   faultline-bench [--quick] [--json FILE] [--plot] [--sweep] [--runs N] [--only SUBSTRING]
//                   [--fault-around-pages N] [--fault-around-max-pages N] [--handler-threads N]
//                   [--handler-spin-us N]
//
// Prints a table of cases (docs/performance.md explains each): anon_* on
// anonymous memory, file_* on a test file in $TMPDIR (file_seq_read_cold,
// file_seq_read_warm, file_rand_read_cold, file_budget_hotcold, file_fork, file_write_sync;
// umap_rand_read through the umap-compatible API), purge_refault_1g and
// volatile_toggle_1m on purgeable memory, budget_hotcold_heap and swap_in_rand
// on swap-backed anonymous memory, preload_* (whole programs under the
// preloaded heap against glibc's malloc); --json writes
// the same results machine-readably, --plot draws them into docs/img with
// gnuplot. --sweep measures first-touch cost over a grid of
// Config::fault_around_pages x Config::handler_threads, then over
// Config::handler_spin_us, instead: the data the runtime's defaults are
// chosen from.
#include "bench.h"
#include "budget_workloads.h"
#include "cow_workloads.h"
#include "file_workloads.h"
#include "mappers.h"
#include "placement.h"
#include "preload_workloads.h"
#include "purge_workloads.h"
#include "report.h"
#include "swap_mappers.h"
#include "swap_workloads.h"
#include "far_workloads.h"
#include "umap_workloads.h"
#include "workloads.h"

#include <faultline/runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace bench;

namespace {

constexpr size_t MiB = size_t(1) << 20;
constexpr size_t GiB = size_t(1) << 30;

struct Options {
    bool quick = false;
    bool plot = false;
    bool sweep = false;
    unsigned runs = 5;
    std::string json;
    std::string only;
    std::string plot_dir = "docs/img";
    // Overrides of the library's defaults, so that a proposed default can
    // be measured before the library adopts it.
    std::optional<unsigned> fault_around_pages;
    std::optional<unsigned> fault_around_max_pages;
    std::optional<unsigned> handler_threads;
    std::optional<unsigned> handler_spin_us;
    std::optional<faultline::WakeOrder> wake_order;

    bool overridden() const
    {
        return fault_around_pages || fault_around_max_pages || handler_threads || handler_spin_us || wake_order;
    }
    // The library's defaults with the overrides applied.
    faultline::Config config() const
    {
        faultline::Config c;
        c.fault_around_pages = fault_around_pages.value_or(c.fault_around_pages);
        c.fault_around_max_pages = fault_around_max_pages.value_or(c.fault_around_max_pages);
        c.handler_threads = handler_threads.value_or(c.handler_threads);
        c.handler_spin_us = handler_spin_us.value_or(c.handler_spin_us);
        c.wake_order = wake_order.value_or(c.wake_order);
        return c;
    }
};

// Region sizes. Full size is what docs/performance.md reports; --quick
// shrinks every region so the whole run takes about a minute on an idle
// 2-core VM (the cases with programs, swap and clones set the floor), at the
// price of a larger share of fixed per-run costs.
struct Sizes {
    size_t touch_bytes;      // the first-touch and read cases
    size_t single_faults;    // faults per repetition of anon_single_fault
    size_t sweep_bytes;      // the first-touch workloads of the sweep
    size_t sweep_faults;     // the sparse workload of the sweep
    size_t file_bytes;       // the test file of the file cases
    // Pages file_rand_read_cold reads (one in eight of the file): every
    // read waits for the disk (~0.1 ms on a virtio disk), so reading all
    // 262,144 pages of 1 GiB would take about a minute per repetition.
    size_t file_random_reads;
    // file_budget_hotcold: the region (a quarter of it is the budget) and
    // the reads over it. The misses decide its time: the hot set is read
    // once, the cold reads (one in ten) nearly all miss.
    size_t budget_region_bytes;
    size_t budget_reads;
    size_t purge_bytes;      // purge_refault_1g's region
    size_t toggle_pairs;     // set_volatile + set_nonvolatile pairs per repetition of volatile_toggle_1m
    unsigned preload_scale;  // the preload_* programs' inputs are divided by this
    // budget_hotcold_heap: the anonymous region (a quarter of it is the
    // budget) and the accesses over it.
    size_t heap_region_bytes;
    size_t heap_accesses;
    // swap_in_rand: the anonymous region and the budget it is swapped out
    // under (every page but the budget's worth is read back, timed).
    size_t swap_in_bytes;
    size_t swap_in_budget;
    // clone_1g, cow_write_after_clone, clone_read_rss, rollback_10pct: the
    // region cloned (or snapshotted and rolled back).
    size_t clone_bytes;
};
constexpr Sizes kFull { 1 * GiB, 8192, 256 * MiB, 2048, 1 * GiB, 32768, 256 * MiB, 200000, 1 * GiB, 20000, 1,
    256 * MiB, 200000, 256 * MiB, 16 * MiB, 1 * GiB };
constexpr Sizes kQuick { 128 * MiB, 2048, 32 * MiB, 512, 128 * MiB, 4096, 32 * MiB, 20000, 128 * MiB, 2000, 8,
    16 * MiB, 15000, 16 * MiB, 1 * MiB, 64 * MiB };

// Isolated faults sit 64 pages (256 KiB) apart: far enough that even the
// largest fault-around window the sweep tries (64 pages) never covers the
// next touched page, so every touch is a fault of its own.
constexpr size_t kSparseStridePages = 64;

void usage(FILE* out)
{
    fprintf(out,
        "usage: faultline-bench [--quick] [--json FILE] [--plot] [--plot-dir DIR] [--sweep] [--runs N] [--only SUBSTRING]\n"
        "                       [--fault-around-pages N] [--fault-around-max-pages N] [--handler-threads N]\n"
        "  --quick        reduced sizes (about a minute on an idle 2-core machine)\n"
        "  --json FILE    also write the results as JSON\n"
        "  --plot         render charts into --plot-dir (default docs/img) with gnuplot\n"
        "  --sweep        instead of the cases, measure first-touch cost for fault_around_pages\n"
        "                 in {1,4,8,16,32,64} x handler_threads in {1,2}, then for\n"
        "                 handler_spin_us in {0,10,25,50,100}, then for fault_around_max_pages\n"
        "                 in {32,64,128,256,512} (adaptive fault-around's ceiling)\n"
        "  --runs N       timed repetitions per side (default 5; medians are reported)\n"
        "  --only S       run only the cases whose name contains S; the cases are\n"
        "                 anon_seq_first_touch, anon_rand_first_touch, anon_single_fault,\n"
        "                 anon_mt_first_touch, anon_read_zero, anon_sparse_touch (and their\n"
        "                 /same_cpu, /vs_fixed variants), and on a file in $TMPDIR (1 GiB,\n"
        "                 --quick 128 MiB): file_seq_read_cold (and /direct_io), file_seq_read_warm,\n"
        "                 file_rand_read_cold, umap_rand_read, file_budget_hotcold,\n"
        "                 file_fork, file_write_sync; and purge_refault_1g (--quick: 128 MiB),\n"
        "                 volatile_toggle_1m (purgeable memory); budget_hotcold_heap,\n"
        "                 swap_in_rand (swap-backed anonymous memory under a budget, swap\n"
        "                 file in $TMPDIR), budget_hotcold_heap/kernel_swap (as root: the\n"
        "                 kernel's swap under a memory cgroup, a swap file in $TMPDIR swapped\n"
        "                 on for the case); far_swap_in_rand, far_swap_in_rand/hiredis,\n"
        "                 far_heap_hotcold (the swap in redis-servers the case starts; skipped\n"
        "                 without redis-server); clone_1g, cow_write_after_clone,\n"
        "                 clone_written_10pct[/scattered], clone_read_rss,\n"
        "                 rollback_10pct (copy-on-write against fork() and memcpy; --quick:\n"
        "                 64 MiB); preload_python, preload_sqlite,\n"
        "                 preload_xz, preload_sort (programs under libfaultline_malloc.so;\n"
        "                 --quick: an eighth of the input)\n"
        "  --fault-around-pages N, --fault-around-max-pages N, --handler-threads N, --handler-spin-us N,\n"
        "  --wake-order adaptive|after|before\n"
        "                 use these instead of the library's defaults (cases; the sweep's\n"
        "                 fixed settings)\n");
}

Options parse(int argc, char** argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                fprintf(stderr, "faultline-bench: %s needs a value\n", a.c_str());
                usage(stderr);
                exit(2);
            }
            return argv[++i];
        };
        if (a == "--quick")
            o.quick = true;
        else if (a == "--plot")
            o.plot = true;
        else if (a == "--sweep")
            o.sweep = true;
        else if (a == "--json")
            o.json = value();
        else if (a == "--plot-dir")
            o.plot_dir = value();
        else if (a == "--only")
            o.only = value();
        else if (a == "--fault-around-pages")
            o.fault_around_pages = unsigned(atoi(value().c_str()));
        else if (a == "--fault-around-max-pages")
            o.fault_around_max_pages = unsigned(atoi(value().c_str()));
        else if (a == "--handler-threads")
            o.handler_threads = unsigned(atoi(value().c_str()));
        else if (a == "--handler-spin-us")
            o.handler_spin_us = unsigned(atoi(value().c_str()));
        else if (a == "--wake-order") {
            std::string v = value();
            if (v == "adaptive")
                o.wake_order = faultline::WakeOrder::Adaptive;
            else if (v == "after")
                o.wake_order = faultline::WakeOrder::AfterWindow;
            else if (v == "before")
                o.wake_order = faultline::WakeOrder::BeforeWindow;
            else {
                fprintf(stderr, "faultline-bench: --wake-order is adaptive, after or before\n");
                exit(2);
            }
        }
        else if (a == "--runs") {
            o.runs = unsigned(atoi(value().c_str()));
            if (o.runs == 0) {
                fprintf(stderr, "faultline-bench: --runs must be at least 1\n");
                exit(2);
            }
        } else if (a == "--help" || a == "-h") {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "faultline-bench: unknown argument '%s'\n", a.c_str());
            usage(stderr);
            exit(2);
        }
    }
    return o;
}

// Where the threads of a case run (placement.h explains why it matters).
enum class Placement {
    // Left to the scheduler, with a fresh faultline runtime per repetition.
    Scheduler,
    // faultline's handler threads (and the minimal handler) pinned to one
    // CPU, the touching thread to another: the usual situation on a
    // multi-core machine whose application threads keep their CPUs busy.
    OtherCpu,
    // Everything pinned to one CPU: no cross-CPU wake-ups at all, which
    // leaves the cost of the fault path itself.
    SameCpu,
};

const char* placement_name(Placement p)
{
    switch (p) {
    case Placement::Scheduler:
        return "scheduler";
    case Placement::OtherCpu:
        return "handler-on-other-cpu";
    case Placement::SameCpu:
        return "same-cpu";
    }
    return "?";
}

// What a case compares faultline with. FixedWindow is faultline itself with
// the fault-around window held at fault_around_pages and every thread
// waiting for its window (no adaptation): the configuration before adaptive
// fault-around, measured in the same run.
enum class Baseline { Native, MinimalUffd, FixedWindow };

faultline::Config fixed_window(faultline::Config c)
{
    c.fault_around_max_pages = c.fault_around_pages;
    c.wake_order = faultline::WakeOrder::AfterWindow;
    return c;
}

void describe(Result& r, const faultline::Config& config, Placement placement)
{
    r.fault_around_pages = config.fault_around_pages;
    r.fault_around_max_pages = config.fault_around_max_pages;
    r.handler_threads = config.handler_threads;
    r.handler_spin_us = config.handler_spin_us;
    r.placement = placement_name(placement);
}

// Runs one workload: faultline with `config` against `baseline`, under
// `placement`. Never throws; failures are returned in Result::error.
Result measure(const Workload& w, const faultline::Config& config, Baseline baseline, Placement placement,
    const CompareOptions& co)
{
    Result r;
    try {
        const std::vector<int> cpus = allowed_cpus();
        if (placement != Placement::Scheduler && cpus.empty())
            fail("no CPU in this process's affinity mask");
        NativeMapper native;
        std::unique_ptr<faultline::Runtime> runtime;
        std::unique_ptr<FaultlineMapper> faultline;
        std::unique_ptr<MinimalUffdMapper> minimal;
        std::unique_ptr<faultline::Runtime> fixed_runtime;
        std::unique_ptr<FaultlineMapper> fixed;
        if (placement == Placement::Scheduler) {
            faultline = std::make_unique<FaultlineMapper>(config);
            if (baseline == Baseline::MinimalUffd)
                minimal = std::make_unique<MinimalUffdMapper>();
            if (baseline == Baseline::FixedWindow)
                fixed = std::make_unique<FaultlineMapper>(fixed_window(config));
        } else {
            const int handler_cpu = placement == Placement::OtherCpu ? cpus.at(1) : cpus[0];
            {
                // Handler threads are started while pinned, so they
                // inherit the pin.
                PinnedTo pinned(handler_cpu);
                runtime = make_runtime(config);
                if (baseline == Baseline::MinimalUffd)
                    minimal = std::make_unique<MinimalUffdMapper>();
                if (baseline == Baseline::FixedWindow)
                    fixed_runtime = make_runtime(fixed_window(config));
            }
            faultline = std::make_unique<FaultlineMapper>(*runtime);
            if (fixed_runtime)
                fixed = std::make_unique<FaultlineMapper>(*fixed_runtime);
        }
        std::optional<PinnedTo> touching_cpu;
        if (placement != Placement::Scheduler)
            touching_cpu.emplace(cpus[0]);
        Mapper& base = baseline == Baseline::Native ? static_cast<Mapper&>(native)
            : baseline == Baseline::MinimalUffd     ? static_cast<Mapper&>(*minimal)
                                                    : static_cast<Mapper&>(*fixed);
        r = compare(w, *faultline, base, co);
    } catch (const Failure& e) {
        r.name = w.name;
        r.unit = w.unit;
        r.error = e.what();
    }
    describe(r, config, placement);
    return r;
}

// A file case: its own sides (file_workloads.h), under the scheduler.
//
// Placement is left to the scheduler, with a Runtime per repetition (so the
// median samples its choices), as in an application: these cases measure
// what reading and writing a file through a region costs next to the
// kernel's own paths, and the price of a cross-CPU wake-up alone is what the
// pinned anon_single_fault variants isolate. It still shows here, and the
// spread column says how much: file_rand_read_cold pays one fault round trip
// per page next to a disk read, and file_write_sync one write-protect fault
// round trip per page (dirty tracking), which costs about 10 µs with the
// handler on the writer's CPU and about 90 µs with it on another one on the
// 2-vCPU KVM guest the file cases were first measured on.
Result measure_file(const std::string& name, const std::function<FileCase()>& make, const faultline::Config& config,
    const CompareOptions& co)
{
    Result r;
    try {
        FileCase c = make();
        r = compare(c.workload, *c.faultline, *c.baseline, co);
    } catch (const Failure& e) {
        r.name = name;
        r.unit = "ns/page";
        r.error = e.what();
    }
    describe(r, config, Placement::Scheduler);
    return r;
}

// The cases of docs/performance.md, each against its own baseline.
std::vector<Result> run_cases(const Options& o, const Sizes& s)
{
    CompareOptions co;
    co.runs = o.runs;
    // The library's default configuration, so that the figures describe
    // what an application gets without tuning (unless overridden).
    const faultline::Config defaults = o.config();
    // Fault-around off: one touch is one fault is one page.
    faultline::Config one_page = defaults;
    one_page.fault_around_pages = 1;
    // On a single CPU there is no other CPU to put a handler on; the
    // unsuffixed cases then run on the one there is.
    const bool have_two_cpus = allowed_cpus().size() >= 2;
    const Placement usual = have_two_cpus ? Placement::OtherCpu : Placement::SameCpu;

    std::vector<Result> results;
    auto run = [&](const Workload& w, const faultline::Config& config, Baseline baseline, Placement placement) {
        if (!o.only.empty() && w.name.find(o.only) == std::string::npos)
            return;
        Result r = measure(w, config, baseline, placement, co);
        print_table_row(r);
        results.push_back(std::move(r));
    };
    // Single-threaded cases run twice: with the handler on another CPU
    // (the name without suffix) and with everything on one CPU (/same_cpu).
    // The difference between the two is the price of cross-CPU wake-ups.
    auto both = [&](auto make, const std::string& name, const faultline::Config& config, Baseline baseline) {
        run(make(name), config, baseline, usual);
        if (have_two_cpus)
            run(make(name + "/same_cpu"), config, baseline, Placement::SameCpu);
    };

    printf("faultline config: fault_around_pages=%u fault_around_max_pages=%u (0 = automatic) handler_threads=%u "
           "handler_spin_us=%u wake_order=%s (%s)\n\n",
        defaults.fault_around_pages, defaults.fault_around_max_pages, defaults.handler_threads, defaults.handler_spin_us,
        defaults.wake_order == faultline::WakeOrder::Adaptive ? "adaptive" : defaults.wake_order == faultline::WakeOrder::AfterWindow ? "after" : "before",
        o.overridden() ? "overridden on the command line" : "the library's defaults");
    print_table_header();
    both([&](std::string n) { return seq_first_touch(n, s.touch_bytes); }, "anon_seq_first_touch", defaults,
        Baseline::Native);
    both([&](std::string n) { return rand_first_touch(n, s.touch_bytes); }, "anon_rand_first_touch", defaults,
        Baseline::Native);
    // The baseline is the minimal handler, so the ratio is faultline's
    // per-fault overhead over what userfaultfd itself costs here.
    both([&](std::string n) { return sparse_touch(n, s.single_faults, kSparseStridePages); }, "anon_single_fault",
        one_page, Baseline::MinimalUffd);
    // More touching threads than a small machine has CPUs: pinning cannot
    // give every thread a CPU of its own, so the scheduler places them.
    for (unsigned threads : { 2u, 4u })
        run(mt_first_touch("anon_mt_first_touch/" + std::to_string(threads), s.touch_bytes, threads), defaults,
            Baseline::Native, Placement::Scheduler);
    both([&](std::string n) { return read_zero(n, s.touch_bytes); }, "anon_read_zero", defaults, Baseline::Native);
    // Adaptive fault-around's price where it cannot help: isolated touches,
    // against the same runtime with the window fixed at fault_around_pages
    // (the configuration before adaptation).
    both([&](std::string n) { return sparse_touch(n, s.single_faults, kSparseStridePages); }, "anon_sparse_touch",
        defaults, Baseline::FixedWindow);
    // And its gain where it can: a dense first touch against the fixed window.
    both([&](std::string n) { return seq_first_touch(n, s.touch_bytes); }, "anon_seq_first_touch/vs_fixed", defaults,
        Baseline::FixedWindow);

    // File regions against the kernel's mmap of the same file (and random
    // reads against io_uring), on one test file created for the run when a
    // file case is selected. file_write_sync comes last: it changes the
    // file (the checks know how, file_workloads.cc).
    std::shared_ptr<TestFile> file;
    auto run_file = [&](const std::string& name, auto make) {
        if (!o.only.empty() && name.find(o.only) == std::string::npos)
            return;
        Result r = measure_file(name, [&] {
            if (!file) {
                file = std::make_shared<TestFile>(s.file_bytes);
                printf("%-30s %s\n", "(file cases)", file->describe().c_str());
            }
            return make(name);
        }, defaults, co);
        print_table_row(r);
        results.push_back(std::move(r));
    };
    run_file("file_seq_read_cold", [&](std::string n) { return file_seq_read_cold(n, file, defaults); });
    run_file("file_seq_read_cold/direct_io", [&](std::string n) { return file_seq_read_cold_direct(n, file, defaults); });
    run_file("file_seq_read_warm", [&](std::string n) { return file_seq_read_warm(n, file, defaults); });
    run_file("file_rand_read_cold",
        [&](std::string n) { return file_rand_read_cold(n, file, defaults, s.file_random_reads); });
    // umap programs relinked against libfaultline-umap (docs/umap.md): the
    // same reads as file_rand_read_cold, through umap().
    run_file("umap_rand_read", [&](std::string n) { return umap_rand_read(n, file, s.file_random_reads); });
    run_file("file_budget_hotcold", [&](std::string n) {
        return file_budget_hotcold(n, file, defaults, s.budget_region_bytes, s.budget_reads);
    });
    run_file("file_fork", [&](std::string n) { return file_fork(n, file, defaults); });
    run_file("file_write_sync", [&](std::string n) { return file_write_sync(n, file, defaults); });

    // Cases that bring their own two sides (a workload and both mappers:
    // PurgeCase, PreloadCase), under the scheduler.
    auto run_own = [&](const std::string& name, auto make) {
        if (!o.only.empty() && name.find(o.only) == std::string::npos)
            return;
        Result r;
        try {
            auto c = make(name);
            r = compare(c.workload, *c.faultline, *c.baseline, co);
        } catch (const Failure& e) {
            r.name = name;
            r.error = e.what();
        }
        describe(r, defaults, Placement::Scheduler);
        print_table_row(r);
        results.push_back(std::move(r));
    };
    // Purgeable memory: a purge and the re-touch it costs, against
    // MADV_DONTNEED; a volatility toggle, against a pair of mprotect calls.
    run_own("purge_refault_1g", [&](std::string n) { return purge_refault(n, s.purge_bytes, defaults); });
    run_own("volatile_toggle_1m", [&](std::string n) { return volatile_toggle(n, MiB, s.toggle_pairs, defaults); });
    // The swap pager: anonymous memory under a budget, its cold pages in the
    // runtime's swap file. Clock against FIFO on a hot set; the kernel's own
    // swap under a memory cgroup where this process may set one up (root: a
    // swap file swapped on for the case alone); swap-ins against io_uring
    // reads of a file in the page cache.
    auto run_swap = [&](const std::string& name, auto make) {
        if (!o.only.empty() && name.find(o.only) == std::string::npos)
            return;
        Result r;
        try {
            SwapCase c = make(name);
            if (!c.setup.empty())
                printf("%-30s %s\n", ("(" + name + ")").c_str(), c.setup.c_str());
            r = compare(c.workload, *c.faultline, *c.baseline, co);
        } catch (const Unavailable& e) {
            printf("%-30s skipped: %s\n", name.c_str(), e.what());
            return;
        } catch (const Failure& e) {
            r.name = name;
            r.error = e.what();
        }
        describe(r, defaults, Placement::Scheduler);
        print_table_row(r);
        results.push_back(std::move(r));
    };
    run_swap("budget_hotcold_heap",
        [&](std::string n) { return budget_hotcold_heap(n, s.heap_region_bytes, s.heap_accesses, defaults); });
    run_swap("budget_hotcold_heap/kernel_swap",
        [&](std::string n) { return budget_hotcold_heap_kernel(n, s.heap_region_bytes, s.heap_accesses, defaults); });
    run_swap("swap_in_rand",
        [&](std::string n) { return swap_in_rand(n, s.swap_in_bytes, s.swap_in_budget, defaults); });
    // Far memory (docs/far-memory.md): the swap in Redis, servers of the
    // case's own; a quarter of the local cases' sizes (every swap-in is a
    // round trip).
    run_swap("far_swap_in_rand",
        [&](std::string n) { return far_swap_in_rand(n, s.swap_in_bytes / 4, s.swap_in_budget, defaults); });
    run_swap("far_swap_in_rand/hiredis",
        [&](std::string n) { return far_swap_in_rand_hiredis(n, s.swap_in_bytes / 4, s.swap_in_budget, defaults); });
    run_swap("far_heap_hotcold",
        [&](std::string n) { return far_heap_hotcold(n, s.heap_region_bytes / 4, s.heap_accesses / 2, defaults); });
    // Copy-on-write (docs/cow.md): clones of a clonable region against
    // fork() of the same memory, rollback against copying it back.
    run_own("clone_1g", [&](std::string n) { return clone_region(n, s.clone_bytes, defaults); });
    run_own("cow_write_after_clone", [&](std::string n) { return cow_write_after_clone(n, s.clone_bytes, defaults); });
    run_own("clone_written_10pct", [&](std::string n) { return clone_written_10pct(n, s.clone_bytes, false, defaults); });
    run_own("clone_written_10pct/scattered", [&](std::string n) { return clone_written_10pct(n, s.clone_bytes, true, defaults); });
    if (o.only.empty() || std::string("clone_read_rss").find(o.only) != std::string::npos) {
        Result r = clone_read_growth("clone_read_rss", s.clone_bytes, defaults, co.runs);
        describe(r, defaults, Placement::Scheduler);
        print_table_row(r);
        results.push_back(std::move(r));
    }
    run_own("rollback_10pct", [&](std::string n) { return rollback_10pct(n, s.clone_bytes, defaults); });
    // The preloaded heap: whole programs with libfaultline_malloc.so against
    // the same programs with glibc's malloc (wall time per run).
    for (auto [name, program] : { std::pair { "preload_python", Program::Python }, { "preload_sqlite", Program::Sqlite },
             { "preload_xz", Program::Xz }, { "preload_sort", Program::Sort } })
        run_own(name, [&](std::string n) { return preload_program(n, program, s.preload_scale); });
    return results;
}

// The grid the defaults are chosen from. Every configuration gets its own
// runtimes and its own native runs, interleaved with them, so each row's
// ratio is as trustworthy as a case's. Threads are left to the scheduler, as
// they are in an application: a second handler thread can only help by
// being on another CPU than the first, which pinning would rule out.
std::vector<Result> run_sweep(const Options& o, const Sizes& s)
{
    CompareOptions co;
    co.runs = o.runs;
    const std::vector<Workload> workloads = {
        seq_first_touch("anon_seq_first_touch", s.sweep_bytes),
        rand_first_touch("anon_rand_first_touch", s.sweep_bytes),
        // Two touching threads: the load where a second handler thread
        // could pay off.
        mt_first_touch("anon_mt_first_touch/2", s.sweep_bytes, 2),
        // The price of fault-around: isolated touches, where every page
        // installed beside the touched one is wasted work and memory.
        sparse_touch("anon_sparse_touch", s.sweep_faults, kSparseStridePages),
    };
    std::vector<std::string> names;
    for (const auto& w : workloads)
        names.push_back(w.name);

    std::vector<Result> results;
    auto run_row = [&](const faultline::Config& config, const char* grid) {
        std::vector<Result> row;
        for (const auto& w : workloads) {
            row.push_back(measure(w, config, Baseline::Native, Placement::Scheduler, co));
            row.back().sweep_grid = grid;
        }
        print_sweep_row(row);
        results.insert(results.end(), row.begin(), row.end());
    };

    // The grid of the issue: fault-around size x handler threads, with the
    // spin (if any) of the defaults or of --handler-spin-us.
    const faultline::Config base = o.config();
    print_sweep_header(names);
    for (unsigned handlers : { 1u, 2u }) {
        for (unsigned around : { 1u, 4u, 8u, 16u, 32u, 64u }) {
            faultline::Config config = base;
            config.handler_threads = handlers;
            config.fault_around_pages = around;
            run_row(config, "fault_around_pages x handler_threads");
        }
    }
    // Then Config::handler_spin_us at the defaults (or the overridden
    // fault-around size and thread count): how long a handler should keep
    // polling after an event before it sleeps.
    printf("\n");
    print_sweep_header(names);
    for (unsigned spin : { 0u, 10u, 25u, 50u, 100u }) {
        faultline::Config config = base;
        config.handler_spin_us = spin;
        run_row(config, "handler_spin_us");
    }
    // Then the ceiling of adaptive fault-around (fault_around_max_pages,
    // the first row being a fixed window) at the defaults otherwise.
    printf("\n");
    print_sweep_header(names);
    for (unsigned max : { 32u, 64u, 128u, 256u, 512u }) {
        faultline::Config config = base;
        config.fault_around_pages = 32;
        config.fault_around_max_pages = max;
        run_row(config, "fault_around_max_pages");
    }
    return results;
}

} // namespace

int main(int argc, char** argv)
{
    Options o = parse(argc, argv);
    const Sizes& sizes = o.quick ? kQuick : kFull;

    Machine machine = describe_machine();
    machine.mode = o.quick ? "quick" : "full";
    {
        auto rt = make_runtime({});
        machine.uffd_mode = rt->user_mode_only() ? "user-mode-only" : "full";
        machine.faultline_features = rt->features();
    }
    printf("faultline-bench (%s): %s, %u cores, %s, Linux %s, THP %s, cpuidle %s, load %s\n", machine.mode.c_str(),
        machine.cpu.c_str(), machine.cores, machine.hypervisor == "none" ? "bare metal" : (machine.hypervisor + " VM").c_str(),
        machine.kernel.c_str(), machine.thp.c_str(), machine.cpuidle.c_str(), machine.load_start.c_str());
    printf("each figure: median of %u runs, faultline and baseline alternating; ratio = faultline / baseline\n\n", o.runs);

    std::vector<Result> cases, sweep;
    try {
        if (o.sweep)
            sweep = run_sweep(o, sizes);
        else
            cases = run_cases(o, sizes);
    } catch (const Failure& e) {
        // Failures outside a case (a baseline handler that cannot start).
        fprintf(stderr, "faultline-bench: %s\n", e.what());
        return 1;
    }
    machine.load_end = load_average();
    printf("\nload average at end: %s\n", machine.load_end.c_str());

    int status = 0;
    for (const auto* list : { &cases, &sweep })
        for (const Result& r : *list)
            if (r.error) {
                fprintf(stderr, "faultline-bench: %s FAILED: %s\n", r.name.c_str(), r.error->c_str());
                status = 1;
            }
    try {
        if (!o.json.empty()) {
            write_json(o.json, machine, cases, sweep);
            printf("wrote %s\n", o.json.c_str());
        }
        if (o.plot) {
            // A run with overridden settings gets a chart of its own, so
            // that it never replaces the one of the library's defaults.
            std::string suffix;
            if (o.overridden()) {
                faultline::Config c = o.config();
                suffix = "-fa" + std::to_string(c.fault_around_pages) + "-max" + std::to_string(c.fault_around_max_pages) + "-ht" + std::to_string(c.handler_threads) +
                         "-spin" + std::to_string(c.handler_spin_us);
            }
            plot(o.plot_dir, machine, cases, sweep, suffix);
            printf("wrote charts to %s\n", o.plot_dir.c_str());
        }
    } catch (const Failure& e) {
        fprintf(stderr, "faultline-bench: %s\n", e.what());
        status = 1;
    }
    return status;
}
