// tools/stress/main.cc — faultline-stress, the fault-path stress test that
// `./dev stress [SECONDS]` runs (docs/reliability.md, "Stress test").
//
//   faultline-stress [SECONDS] [--threads N] [--mutators N] [--slots N]
//                    [--seed N] [--handler-threads N] [--phases N]
//                    [--watchdog SECONDS] [--accessor-nice N]
//                    [--first-phase N]
//
// Accessor threads (32 by default) read and write pages of many regions —
// anonymous ones, shared and private file regions of a file per slot, and
// Clonable regions with their clones and snapshots — while mutator threads
// map, unmap, split, protect, discard, rename, sync, seal, clone, snapshot
// and roll back those regions. Every word an accessor reads is checked against a
// model of what the page must hold; a watchdog fails the run when any access
// or API call takes longer than a few seconds; and the run is split into
// phases that each use a fresh Runtime with a different configuration
// (handler threads, fault-around, hidden kernel features).
//
// Where things are:
//   main.cc              phases, totals and the report
//   options.{h,cc}       the command line
//   files.{h,cc}         the slots' files and their initial contents
//   model.{h,cc}         the model: the slot table and its sequence lock, the
//                        values written, their verification, and the checks
//                        between phases. Its header explains how the model
//                        works and why observations can be trusted.
//   signals.{h,cc}       accesses that survive SIGSEGV
//   watchdog.{h,cc}      the hang detector
//   accessor.{h,cc}      the accessor threads
//   mutator.{h,cc}       the mutator loop, the table of operations, and the
//                        pick / check / change / verify steps they share
//   mutator/*.cc         one file per operation, each adding itself to the table
//   cow_view.{h,cc}      the steps clone, snapshot and rollback share, and
//                        how writes racing a clone are judged
//   util.{h,cc}          the clock, random numbers, failure reports, names
//
// The tool uses only the public API (<faultline/runtime.h>).
#include "accessor.h"
#include "cow_view.h"
#include "model.h"
#include "mutator.h"
#include "options.h"
#include "signals.h"
#include "util.h"
#include "watchdog.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace stress {

namespace {

struct PhaseConfig {
    unsigned handler_threads;
    unsigned fault_around_pages;
    const char* disable;
    size_t budget_pages = 0; // Config::memory_budget in pages (0 = none)
    EvictionPolicy policy = EvictionPolicy::Clock;
};

// Each phase runs a fresh Runtime in a different configuration: the default
// one; several handler threads with fault-around off, so that many threads
// race to serve single pages; and a large fault-around window with the zero
// page and mseal(2) hidden, so that read faults copy zeros and immutability
// is enforced by the runtime alone.
//
// File regions take a different path in each: asynchronous write tracking
// (wp_async) with zero-copy reads through io_uring by default; write-protect
// faults for tracking in the second; and in the third copy mode (no minor
// faults: reads land in a staging buffer, no write tracking at all, so sync
// writes every cached page) with the I/O worker thread instead of io_uring.
// (The features hidden for file regions change nothing for anonymous ones.)
//
// The last two run under a memory budget far smaller than the files the
// slots map (Clock, then FIFO): the evictor writes dirty pages back and
// drops pages while accessors read and write them and mutators sync,
// discard and unmap — and the model must still find every byte. The FIFO
// phase also runs as on kernels before 6.4 (continue_wp hidden): file pages
// are mapped writable and counted dirty at once, so the evictor writes back
// pages nobody wrote.
constexpr PhaseConfig kPhaseConfigs[] = {
    { 1, 16, "" },
    { 4, 1, "wp_async" },
    { 2, 64, "zeropage,mseal,minor,io_uring" },
    { 2, 16, "", 48, EvictionPolicy::Clock },
    { 3, 8, "continue_wp", 32, EvictionPolicy::Fifo },
};

struct Totals {
    double seconds = 0;
    uint64_t ops = 0;
    uint64_t faults = 0;
    uint64_t pages_installed = 0;
    uint64_t bytes = 0;
    uint64_t visits = 0;
    uint64_t stable_visits = 0;
    uint64_t segv = 0;
    uint64_t clones = 0;
    uint64_t snapshots = 0;
    uint64_t racing_views = 0;
    uint64_t rollbacks = 0;
    uint64_t cow_refusals = 0;
    uint64_t cow_bytes = 0;
};

// The phase in progress, for the watchdog's report (describe_address).
std::atomic<World*> g_world { nullptr };

// Which slot holds `address`, from the slots' published state only (the
// hung thread may hold the model's lock).
void describe_address(uintptr_t address, char* out, size_t len)
{
    World* w = g_world.load();
    if (!w)
        return;
    static constexpr const char* kKinds[] = { "anonymous", "shared file", "private file", "clonable or clone", "snapshot" };
    for (unsigned si = 0; si < w->opt.slots; ++si) {
        const Slot& s = w->slots[si];
        const uintptr_t base = s.base.load();
        const unsigned n = s.npages.load();
        if (address < base || address >= base + size_t(n) * w->page)
            continue;
        const unsigned p = unsigned((address - base) / w->page);
        const PageView v = unpack(s.pages[std::min(p, kMaxPages - 1)].load());
        std::snprintf(out, len, "(slot %u page %u of %u: %s, %s, %s, sequence %s)", si, p, n, kKinds[unsigned(s.kind.load()) % 5],
            v.mapped ? access_name(v.access) : "unmapped", s.live.load() ? "live" : "empty", s.seq.load() & 1 ? "odd" : "even");
        return;
    }
    std::snprintf(out, len, "(in no slot)");
}

void run_phase(const Options& opt, FileSet& files, unsigned phase, unsigned phases, double seconds, Activity* activities,
    Totals& totals)
{
    const PhaseConfig& pc = kPhaseConfigs[(phase + opt.first_phase - 1) % (sizeof kPhaseConfigs / sizeof kPhaseConfigs[0])];
    Config config;
    config.handler_threads = opt.handler_threads ? opt.handler_threads : pc.handler_threads;
    config.fault_around_pages = pc.fault_around_pages;
    config.disable = pc.disable;
    if (pc.budget_pages) {
        config.memory_budget = pc.budget_pages * size_t(sysconf(_SC_PAGESIZE));
        config.eviction_batch_pages = 8;
        config.eviction_policy = pc.policy;
    }
    auto created = Runtime::create(config);
    if (!created) {
        std::fprintf(stderr, "stress: FAIL: Runtime::create failed: %s: %s\n", errno_name(created.error().code()),
            created.error().message());
        std::exit(1);
    }
    std::unique_ptr<Runtime> rt = std::move(*created);
    Activity& main_activity = activities[opt.threads + opt.mutators];

    std::string features;
    for (auto& f : rt->features())
        features += (features.empty() ? "" : ",") + f;
    std::printf("stress: phase %u/%u: %.0f s, %u handler thread(s), fault-around %u, hidden '%s', features %s%s", phase + 1, phases,
        seconds, config.handler_threads, config.fault_around_pages, pc.disable, features.c_str(),
        rt->user_mode_only() ? " (user-mode-only)" : "");
    if (pc.budget_pages)
        std::printf(", budget %zu pages (%s)", pc.budget_pages, pc.policy == EvictionPolicy::Clock ? "clock" : "fifo");
    std::printf("\n");
    std::fflush(stdout);

    {
        World w(opt, *rt, files);
        w.activities = activities;
        g_world.store(&w);
        set_address_describer(describe_address);
        set_guarded_arena(w.arena_lo, w.arena_hi);
        const uint64_t failures_before = g_failures.load();

        std::vector<std::thread> threads;
        for (unsigned t = 0; t < opt.threads; ++t)
            threads.emplace_back([&w, t, seed = opt.seed ^ (uint64_t(phase) << 40) ^ (t * 0x1000193ull)] { run_accessor(w, t, seed); });
        std::vector<std::unique_ptr<Mutator>> mutators;
        for (unsigned m = 0; m < opt.mutators; ++m)
            mutators.push_back(std::make_unique<Mutator>(w, m, opt.seed ^ (uint64_t(phase) << 40) ^ (0xabcdef12345ull + m),
                activities[opt.threads + m]));
        for (auto& m : mutators)
            threads.emplace_back([m = m.get()] { m->run(); });

        const int64_t start = now_ns();
        const int64_t end = start + int64_t(seconds * 1e9);
        int64_t next_report = start + int64_t(10e9);
        for (int64_t now = start; now < end; now = now_ns()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(100, (end - now) / 1'000'000 + 1)));
            if (seconds >= 30 && now_ns() >= next_report) {
                next_report += int64_t(10e9);
                uint64_t bytes = w.mutator_bytes_verified.load();
                for (auto& a : w.accessors)
                    bytes += a->bytes_verified.load();
                std::printf("stress:   %3.0f s: %llu operations, %llu faults served, %llu bytes verified, %llu failures\n",
                    double(now_ns() - start) / 1e9, (unsigned long long)w.ops.load(), (unsigned long long)rt->stats().fault_events,
                    (unsigned long long)bytes, (unsigned long long)g_failures.load());
                std::fflush(stdout);
            }
        }
        w.stop.store(true);
        main_activity.begin("joining threads", 0);
        for (auto& t : threads)
            t.join();
        main_activity.end();
        const double elapsed = double(now_ns() - start) / 1e9;

        // How many of the slots left holding something hold a file region,
        // and how many a copy-on-write region (a snapshot).
        unsigned live = 0, file_live = 0, cow_live = 0, snapshot_live = 0;
        for (unsigned si = 0; si < opt.slots; ++si) {
            const bool l = w.slots[si].live.load();
            const Kind k = w.slots[si].kind.load();
            live += l;
            file_live += l && is_file(k);
            cow_live += l && is_cow(k);
            snapshot_live += l && k == Kind::Snapshot;
        }
        main_activity.begin("final sweep", 0);
        uint64_t sweep_bytes = final_sweep(w);
        main_activity.end();
        main_activity.begin("checking tables", 0);
        check_tables(w, "end of phase");
        main_activity.end();

        // Unmap everything that can be, and check the runtime is left with
        // exactly the immutable pages (and their commit charge).
        Mutator cleaner(w, opt.mutators, opt.seed, main_activity);
        cleaner.unmap_everything();
        main_activity.begin("checking tables", 0);
        check_tables(w, "after unmapping everything");
        main_activity.end();
        // Every clone, snapshot and Clonable region is unmapped now (none is
        // ever sealed): the frozen objects must be gone with their last view
        // (docs/cow.md, "Memory"). check_tables has checked their commit.
        if (const unsigned left = count_cow_memfds())
            failure("after unmapping everything: %u memfd(s) of Clonable regions, clones or snapshots are still open", left);

        set_address_describer(nullptr);
        g_world.store(nullptr);
        const RuntimeStats st = rt->stats();
        uint64_t bytes = w.mutator_bytes_verified.load() + sweep_bytes, visits = 0, stable = 0, segv = 0;
        for (auto& a : w.accessors) {
            bytes += a->bytes_verified.load();
            visits += a->visits.load();
            stable += a->stable_visits.load();
            segv += a->segv_caught.load();
        }
        std::printf("stress: phase %u/%u: %.1f s, %llu operations, %llu faults served (%llu pages installed, %llu deduplicated, %llu stale, "
                    "%llu eexist), %llu visits (%llu stable), %llu SIGSEGVs caught, %llu bytes verified, %u immutable slots, %llu file maps "
                    "(file regions in %u of %u slots at the end), %llu checked syncs, %llu purged pages reported, "
                    "%llu anonymous pages swapped out and %llu in, %llu failures\n",
            phase + 1, phases, elapsed, (unsigned long long)w.ops.load(), (unsigned long long)st.fault_events,
            (unsigned long long)st.pages_installed, (unsigned long long)st.faults_deduplicated, (unsigned long long)st.stale_faults,
            (unsigned long long)st.eexist, (unsigned long long)visits, (unsigned long long)stable, (unsigned long long)segv,
            (unsigned long long)bytes, w.pinned.load(), (unsigned long long)w.file_maps.load(), file_live, live,
            (unsigned long long)w.checked_syncs.load(), (unsigned long long)w.purged_pages.load(),
            (unsigned long long)st.swapped_out, (unsigned long long)st.swapped_in,
            (unsigned long long)(g_failures.load() - failures_before));
        std::printf("stress: phase %u/%u: copy-on-write: %llu clonable maps, %llu clones, %llu snapshots (%llu of them racing writers, "
                    "%llu words written during the call), %llu rollbacks, %llu bad calls refused, %llu clone/snapshot/rollback bytes "
                    "verified, clone depth up to %u, chain depth up to %u (copy-on-write regions in %u slots at the end, %u snapshots)\n",
            phase + 1, phases, (unsigned long long)w.clonable_maps.load(), (unsigned long long)w.clones.load(),
            (unsigned long long)w.snapshots.load(), (unsigned long long)w.racing_views.load(), (unsigned long long)w.racing_words.load(),
            (unsigned long long)w.rollbacks.load(), (unsigned long long)w.cow_refusals.load(),
            (unsigned long long)w.cow_bytes_verified.load(), w.max_clone_depth.load(), w.max_chain_depth.load(), cow_live, snapshot_live);
        std::fflush(stdout);
        totals.seconds += elapsed;
        totals.ops += w.ops.load();
        totals.faults += st.fault_events;
        totals.pages_installed += st.pages_installed;
        totals.bytes += bytes;
        totals.visits += visits;
        totals.stable_visits += stable;
        totals.segv += segv;
        totals.clones += w.clones.load();
        totals.snapshots += w.snapshots.load();
        totals.racing_views += w.racing_views.load();
        totals.rollbacks += w.rollbacks.load();
        totals.cow_refusals += w.cow_refusals.load();
        totals.cow_bytes += w.cow_bytes_verified.load();
    }

    // Destroying the runtime unmaps what is left (the immutable regions stay,
    // as the kernel keeps sealed memory). Watched too: it joins the handler
    // threads.
    main_activity.begin("destroying the runtime", 0);
    rt.reset();
    main_activity.end();
    set_guarded_arena(0, 0);
}

} // namespace

} // namespace stress

int main(int argc, char** argv)
{
    using namespace stress;
    const Options opt = parse_options(argc, argv);
    unsigned phases = opt.phases;
    if (!phases)
        phases = opt.seconds >= 15 ? 5 : opt.seconds >= 9 ? 3 : 1;

    install_signal_handlers();
    FileSet files(opt.slots, kMaxPages, size_t(sysconf(_SC_PAGESIZE)));
    prepare_thread_for_faults(); // the main thread sweeps and unmaps between phases

    // Activities are labelled once, before the watchdog starts reading them.
    const unsigned activity_count = opt.threads + opt.mutators + 1;
    std::unique_ptr<Activity[]> activities(new Activity[activity_count]);
    for (unsigned i = 0; i < activity_count; ++i) {
        if (i < opt.threads)
            std::snprintf(activities[i].label, sizeof activities[i].label, "accessor %u", i);
        else if (i < opt.threads + opt.mutators)
            std::snprintf(activities[i].label, sizeof activities[i].label, "mutator %u", i - opt.threads);
        else
            std::snprintf(activities[i].label, sizeof activities[i].label, "main thread");
    }
    std::atomic<bool> finished { false };
    std::thread watchdog(run_watchdog, activities.get(), activity_count, int64_t(opt.watchdog_seconds * 1e9), &finished);

    std::printf("stress: %.0f s in %u phase(s), %u accessor threads, %u mutator threads, %u slots, watchdog %.1f s, seed %llu\n",
        opt.seconds, phases, opt.threads, opt.mutators, opt.slots, opt.watchdog_seconds, (unsigned long long)opt.seed);
    for (const std::string& name : opt.skip)
        std::printf("stress: skipping operation '%s' (--skip)\n", name.c_str());
    std::fflush(stdout);

    Totals totals;
    for (unsigned phase = 0; phase < phases; ++phase)
        run_phase(opt, files, phase, phases, opt.seconds / phases, activities.get(), totals);

    finished.store(true);
    watchdog.join();

    const uint64_t failures = g_failures.load();
    std::printf("stress: %.0f s, %llu operations, %llu faults served, %llu bytes verified, %llu clones, %llu snapshots "
                "(%llu racing writers), %llu rollbacks, %llu bad copy-on-write calls refused, %llu clone bytes verified, %llu failures\n",
        totals.seconds, (unsigned long long)totals.ops, (unsigned long long)totals.faults, (unsigned long long)totals.bytes,
        (unsigned long long)totals.clones, (unsigned long long)totals.snapshots, (unsigned long long)totals.racing_views,
        (unsigned long long)totals.rollbacks, (unsigned long long)totals.cow_refusals, (unsigned long long)totals.cow_bytes,
        (unsigned long long)failures);
    return failures ? 1 : 0;
}
