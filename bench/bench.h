// bench/bench.h — types shared by the benchmark's files.
//
// The benchmark compares faultline with a baseline in the same process run:
// each case alternates a faultline repetition and a baseline repetition
// (A B A B ...), and reports the median of each and their ratio. Because both
// sides see the same machine at nearly the same moment, the ratio stays
// meaningful on a noisy machine even when the absolute figures drift.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

// Thrown when a case computes a wrong result or a mapping fails. The case is
// then reported as failed (and the process exits non-zero) instead of
// producing a number that would look valid.
struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& message);

// CLOCK_MONOTONIC in nanoseconds: immune to wall-clock steps, and its vDSO
// read costs tens of nanoseconds, far below one page fault.
uint64_t now_ns();

size_t page_size();

double median(std::vector<double> values);

// Something that hands out fresh regions: faultline, the kernel's own
// anonymous memory, or the minimal userfaultfd handler.
class Mapper {
public:
    virtual ~Mapper() = default;
    // Short label used in tables and JSON (e.g. "native-anon").
    virtual std::string name() const = 0;
    // A fresh, untouched, read-write region of `bytes` (a page multiple).
    // `sparse` says only a small fraction of it will be touched, so it need
    // not be charged against any commit limit. Calls fail() on error.
    virtual char* map(size_t bytes, bool sparse) = 0;
    virtual void unmap(char* base, size_t bytes) = 0;
};

// One measurable workload. `run` receives a fresh region of `bytes` and
// returns the elapsed nanoseconds of the timed part only; `verify` then reads
// the region back (untimed) and calls fail() if any byte is wrong.
struct Workload {
    std::string name;
    std::string unit;          // "ns/page" or "ns/fault"
    size_t bytes = 0;          // region size per repetition
    size_t units = 0;          // pages (or faults) the elapsed time is divided by
    bool sparse = false;       // passed to Mapper::map
    unsigned threads = 1;      // touching threads (informational, for the report)
    std::function<uint64_t(char* base)> run;
    std::function<void(const char* base)> verify;
    // The baseline's own loop and check, when it does something else than
    // faultline's side (io_uring reads instead of touching a region, msync
    // instead of Runtime::sync). Unset: the baseline runs `run` and `verify`.
    std::function<uint64_t(char* base)> baseline_run;
    std::function<void(const char* base)> baseline_verify;
    // Set when the baseline's timed part runs in another process (a child
    // in a memory cgroup): the CPU time it spent there in the last
    // baseline_run, in nanoseconds, added to this process's for the cpu column.
    std::function<uint64_t()> baseline_cpu_ns;
};

struct Result {
    std::string name;
    std::string unit;
    std::string baseline_name;
    double faultline = 0;      // median over runs
    double baseline = 0;
    double ratio = 0;          // faultline / baseline: below 1 means faultline is faster
    unsigned runs = 0;
    unsigned threads = 1;
    size_t bytes = 0;
    size_t units = 0;
    std::vector<double> faultline_runs;
    std::vector<double> baseline_runs;
    // CPU time of the whole process per unit while the workload ran
    // (medians): includes faultline's handler threads.
    double faultline_cpu = 0;
    double baseline_cpu = 0;
    // Configuration of the faultline runtime the case ran against.
    unsigned fault_around_pages = 0;
    unsigned fault_around_max_pages = 0; // 0 = automatic
    unsigned handler_threads = 0;
    unsigned handler_spin_us = 0;
    // For sweep rows: the grid the row belongs to, "fault_around_pages x
    // handler_threads", "handler_spin_us" or "fault_around_max_pages".
    // Empty for cases.
    std::string sweep_grid;
    // Where the threads ran: "scheduler", "handler-on-other-cpu" or
    // "same-cpu" (see main.cc).
    std::string placement;
    std::optional<std::string> error; // set when the case failed: no numbers then
};

struct CompareOptions {
    unsigned runs = 5;
    // An untimed pair first: the first touch of memory after start-up pays
    // for the kernel's page allocator warming up (free lists, page-table
    // pages), which neither side should be charged for.
    bool warmup = true;
};

// Runs `w` on `faultline` and `baseline` alternately, `runs` times each.
// Never throws: a failure is returned in Result::error.
Result compare(const Workload& w, Mapper& faultline, Mapper& baseline, const CompareOptions& options);

} // namespace bench
