// bench/compare.cc — the A/B loop every case goes through, and small helpers.
#include "bench.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <ctime>
#include <unistd.h>

namespace bench {

void fail(const std::string& message) { throw Failure(message); }

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

size_t page_size()
{
    static const size_t size = size_t(sysconf(_SC_PAGESIZE));
    return size;
}

double median(std::vector<double> values)
{
    if (values.empty())
        return 0;
    std::sort(values.begin(), values.end());
    size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

namespace {

// A fault that is never served leaves the touching thread blocked forever,
// which would make a broken runtime look like a slow benchmark. An alarm per
// repetition turns that into a loud failure instead. The message is built
// before arming, because only write(2) and _exit(2) are safe in the handler.
char g_watchdog_message[256];

void on_watchdog(int)
{
    (void)!write(STDERR_FILENO, g_watchdog_message, strlen(g_watchdog_message));
    _exit(3);
}

// Generous: the slowest repetition (1 GiB at 25 µs per page, no
// fault-around) takes under 10 seconds on a 2-core VM.
constexpr unsigned kRepetitionTimeoutSeconds = 120;

void arm_watchdog(const std::string& what)
{
    snprintf(g_watchdog_message, sizeof g_watchdog_message,
        "faultline-bench: %s did not finish within %u s (a fault that is never served?)\n", what.c_str(),
        kRepetitionTimeoutSeconds);
    struct sigaction sa {};
    sa.sa_handler = on_watchdog;
    sigaction(SIGALRM, &sa, nullptr);
    alarm(kRepetitionTimeoutSeconds);
}

void disarm_watchdog() { alarm(0); }

uint64_t process_cpu_ns()
{
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

struct Sample {
    double wall; // elapsed time per unit (page or fault)
    double cpu;  // CPU time of the whole process per unit, over the same span
};

// One repetition: a fresh region, the timed touch, the untimed check, unmap.
Sample repetition(const Workload& w, Mapper& mapper, bool is_baseline)
{
    const auto& run = is_baseline && w.baseline_run ? w.baseline_run : w.run;
    const auto& verify = is_baseline && w.baseline_verify ? w.baseline_verify : w.verify;
    arm_watchdog(w.name + " on " + mapper.name());
    char* base = mapper.map(w.bytes, w.sparse);
    uint64_t elapsed = 0;
    uint64_t cpu = 0;
    try {
        // The process's CPU time includes the handler threads, which is
        // the point: a handler that spins, or two that both wake for one
        // fault, cost CPU that wall time alone does not show.
        uint64_t cpu0 = process_cpu_ns();
        elapsed = run(base);
        cpu = process_cpu_ns() - cpu0;
        if (is_baseline && w.baseline_cpu_ns)
            cpu += w.baseline_cpu_ns();
        verify(base);
    } catch (const Failure& e) {
        mapper.unmap(base, w.bytes);
        disarm_watchdog();
        // Say which side computed the wrong result.
        throw Failure(mapper.name() + ": " + e.what());
    } catch (...) {
        mapper.unmap(base, w.bytes);
        disarm_watchdog();
        throw;
    }
    mapper.unmap(base, w.bytes);
    disarm_watchdog();
    return { double(elapsed) / double(w.units), double(cpu) / double(w.units) };
}

} // namespace

Result compare(const Workload& w, Mapper& faultline, Mapper& baseline, const CompareOptions& options)
{
    Result r;
    r.name = w.name;
    r.unit = w.unit;
    r.baseline_name = baseline.name();
    r.threads = w.threads;
    r.bytes = w.bytes;
    r.units = w.units;
    try {
        if (options.warmup) {
            (void)repetition(w, faultline, false);
            (void)repetition(w, baseline, true);
        }
        // Strictly alternating, so that a burst of noise from elsewhere on
        // the machine (another build, a daemon) lands on both sides rather
        // than on every run of one of them.
        std::vector<double> faultline_cpu, baseline_cpu;
        for (unsigned i = 0; i < options.runs; ++i) {
            Sample f = repetition(w, faultline, false);
            Sample b = repetition(w, baseline, true);
            r.faultline_runs.push_back(f.wall);
            r.baseline_runs.push_back(b.wall);
            faultline_cpu.push_back(f.cpu);
            baseline_cpu.push_back(b.cpu);
        }
        r.faultline_cpu = median(faultline_cpu);
        r.baseline_cpu = median(baseline_cpu);
    } catch (const Failure& e) {
        r.error = std::string(e.what());
        return r;
    }
    r.runs = options.runs;
    r.faultline = median(r.faultline_runs);
    r.baseline = median(r.baseline_runs);
    r.ratio = r.baseline > 0 ? r.faultline / r.baseline : 0;
    return r;
}

} // namespace bench
