// bench/report.h — the table on stdout, the JSON file and the gnuplot charts.
#pragma once

#include "bench.h"

#include <string>
#include <utility>
#include <vector>

namespace bench {

// Where the numbers came from. Absolute figures mean little without it.
struct Machine {
    std::string kernel;        // uname -r
    std::string cpu;           // model name from /proc/cpuinfo
    unsigned cores = 0;        // online CPUs
    std::string hypervisor;    // "KVM", ... or "none"
    uint64_t memory_bytes = 0; // MemTotal
    std::string thp;           // transparent_hugepage/enabled, the selected mode
    // The idle driver decides what waking a sleeping CPU costs, which on a
    // VM dominates a userfaultfd round trip ("haltpoll, guest_halt_poll_ns=0").
    std::string cpuidle;
    size_t page_size = 0;
    std::string started_utc;
    std::string load_start;    // /proc/loadavg when the run began and ended:
    std::string load_end;      // a busy machine shows up here
    std::string mode;          // "full" or "quick"
    std::string uffd_mode;     // "full" or "user-mode-only"
    std::vector<std::string> faultline_features;
};

Machine describe_machine();
std::string load_average();

// Prints the header of the results table, then one row per call.
void print_table_header();
void print_table_row(const Result& r);
void print_sweep_header(const std::vector<std::string>& workloads);
// One row of the sweep: the results of every workload for one configuration.
void print_sweep_row(const std::vector<Result>& row);

// Writes {"machine": {...}, "cases": [...], "sweep": [...]}; fails() if the
// file cannot be written.
void write_json(const std::string& path, const Machine& machine, const std::vector<Result>& cases,
    const std::vector<Result>& sweep);

// Renders the charts into `dir` with gnuplot; fails() if gnuplot is missing or
// reports an error. Writes bench-cases<cases_suffix>.png when `cases` is
// non-empty, and bench-sweep.png and bench-sweep-spin.png when `sweep` is.
void plot(const std::string& dir, const Machine& machine, const std::vector<Result>& cases,
    const std::vector<Result>& sweep, const std::string& cases_suffix);

} // namespace bench
