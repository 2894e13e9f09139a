// bench/report.cc — machine description, the table, JSON and charts.
#include "report.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/utsname.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace bench {

namespace {

std::string read_first_line(const char* path)
{
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

// The value of the first "key : value" line of /proc/cpuinfo or
// /proc/meminfo whose key is `key`.
std::string proc_field(const char* path, const std::string& key)
{
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        std::string k = line.substr(0, colon);
        k.erase(k.find_last_not_of(" \t") + 1);
        if (k != key)
            continue;
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        return v;
    }
    return "";
}

std::string hypervisor_name()
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    __cpuid(1, a, b, c, d);
    if (!(c & (1u << 31)))
        return "none";
    // Leaf 0x40000000 holds the hypervisor's signature ("KVMKVMKVM",
    // "Microsoft Hv", "VMwareVMware", ...).
    __cpuid(0x40000000, a, b, c, d);
    char sig[13] = {};
    memcpy(sig, &b, 4);
    memcpy(sig + 4, &c, 4);
    memcpy(sig + 8, &d, 4);
    std::string s(sig);
    if (s.starts_with("KVMKVMKVM"))
        return "KVM";
    return s.empty() ? "unknown" : s;
#else
    return "unknown";
#endif
}

// "always [madvise] never" -> "madvise".
std::string thp_mode()
{
    std::string line = read_first_line("/sys/kernel/mm/transparent_hugepage/enabled");
    auto l = line.find('['), r = line.find(']');
    if (l == std::string::npos || r == std::string::npos || r < l)
        return line.empty() ? "unavailable" : line;
    return line.substr(l + 1, r - l - 1);
}

std::string cpuidle_description()
{
    std::string driver = read_first_line("/sys/devices/system/cpu/cpuidle/current_driver");
    if (driver.empty())
        return "unknown";
    std::string poll_ns = read_first_line("/sys/module/haltpoll/parameters/guest_halt_poll_ns");
    if (driver == "haltpoll" && !poll_ns.empty())
        driver += ", guest_halt_poll_ns=" + poll_ns;
    return driver;
}

std::string pct_range(const std::vector<double>& runs)
{
    if (runs.empty())
        return "-";
    auto [lo, hi] = std::minmax_element(runs.begin(), runs.end());
    double m = median(runs);
    char buf[32];
    snprintf(buf, sizeof buf, "%.0f%%", m > 0 ? 100.0 * (*hi - *lo) / m : 0.0);
    return buf;
}

// --- JSON ------------------------------------------------------------------

// A writer for the one flat document this program emits; hand-written
// because the bench may use only faultline's public headers and the
// standard library.
class Json {
public:
    std::string str() const { return out_; }

    void open(char bracket) { comma(); out_ += bracket; fresh_ = true; }
    void close(char bracket) { out_ += bracket; fresh_ = false; }
    void key(const std::string& k) { comma(); quoted(k); out_ += ':'; fresh_ = true; }
    void string(const std::string& s) { comma(); quoted(s); }
    void number(double v)
    {
        comma();
        if (!std::isfinite(v)) {
            out_ += "null";
            return;
        }
        // Times are printed to 0.1 ns, ratios to four significant digits;
        // a decimal point is always present so that every consumer parses
        // the figures as floating point ("1234.0", never "1234").
        char buf[48];
        snprintf(buf, sizeof buf, std::fabs(v) >= 100 ? "%.1f" : "%.4g", v);
        if (!strpbrk(buf, ".eEn"))
            strcat(buf, ".0");
        out_ += buf;
    }
    void integer(uint64_t v) { comma(); out_ += std::to_string(v); }
    void null() { comma(); out_ += "null"; }

    void field(const std::string& k, const std::string& v) { key(k); string(v); }
    void field(const std::string& k, double v) { key(k); number(v); }
    void field_int(const std::string& k, uint64_t v) { key(k); integer(v); }
    void numbers(const std::string& k, const std::vector<double>& vs)
    {
        key(k);
        open('[');
        for (double v : vs)
            number(v);
        close(']');
    }

private:
    void comma()
    {
        if (!fresh_)
            out_ += ',';
        fresh_ = false;
    }
    void quoted(const std::string& s)
    {
        out_ += '"';
        for (unsigned char c : s) {
            if (c == '"' || c == '\\') {
                out_ += '\\';
                out_ += char(c);
            } else if (c < 0x20) {
                char buf[8];
                snprintf(buf, sizeof buf, "\\u%04x", c);
                out_ += buf;
            } else {
                out_ += char(c);
            }
        }
        out_ += '"';
    }

    std::string out_;
    bool fresh_ = true;
};

void result_json(Json& j, const Result& r)
{
    j.open('{');
    j.field("name", r.name);
    j.field("unit", r.unit);
    if (r.error) {
        // A failed case carries no figures at all, so that nothing can
        // mistake it for a measurement.
        j.key("faultline");
        j.null();
        j.key("baseline");
        j.null();
        j.field("baseline_name", r.baseline_name);
        j.key("ratio");
        j.null();
        j.field_int("runs", 0);
        j.field("error", *r.error);
    } else {
        j.field("faultline", r.faultline);
        j.field("baseline", r.baseline);
        j.field("baseline_name", r.baseline_name);
        j.field("ratio", r.ratio);
        j.field_int("runs", r.runs);
        j.numbers("faultline_runs", r.faultline_runs);
        j.numbers("baseline_runs", r.baseline_runs);
        j.field("faultline_cpu", r.faultline_cpu);
        j.field("baseline_cpu", r.baseline_cpu);
    }
    if (!r.sweep_grid.empty())
        j.field("sweep_grid", r.sweep_grid);
    j.field("placement", r.placement);
    j.field_int("threads", r.threads);
    j.field_int("bytes", r.bytes);
    j.field_int(r.unit == "ns/fault" ? "faults" : r.unit == "ns/page" ? "pages" : "units", r.units);
    j.key("config");
    j.open('{');
    j.field_int("fault_around_pages", r.fault_around_pages);
    j.field_int("fault_around_max_pages", r.fault_around_max_pages);
    j.field_int("handler_threads", r.handler_threads);
    j.field_int("handler_spin_us", r.handler_spin_us);
    j.close('}');
    j.close('}');
}

// --- gnuplot ---------------------------------------------------------------

void write_file(const std::string& path, const std::string& text)
{
    std::ofstream out(path);
    out << text;
    if (!out)
        fail("cannot write " + path);
}

void run_gnuplot(const std::string& script_path)
{
    std::string cmd = "gnuplot '" + script_path + "'";
    int rc = system(cmd.c_str());
    if (rc != 0)
        fail("gnuplot failed (exit status " + std::to_string(rc) +
             "); is gnuplot installed? ./dev bench --plot installs gnuplot-nox");
}

std::string chart_title(const Machine& m)
{
    return "faultline-bench (" + m.mode + ") on " + m.cpu + ", " + std::to_string(m.cores) + " cores, " +
           (m.hypervisor == "none" ? std::string("bare metal") : m.hypervisor + " VM") + ", Linux " + m.kernel;
}

void plot_cases(const std::string& dir, const std::string& tmp, const Machine& m, const std::vector<Result>& cases,
    const std::string& suffix)
{
    std::ostringstream data;
    size_t n = 0;
    for (const Result& r : cases) {
        if (r.error)
            continue;
        data << r.name << ' ' << r.faultline << ' ' << r.baseline << ' ' << r.ratio << '\n';
        ++n;
    }
    write_file(tmp + "/cases.dat", data.str());
    std::ostringstream gp;
    gp << "set terminal pngcairo size 1300,560 font ',10' noenhanced\n"
       << "set output '" << dir << "/bench-cases" << suffix << ".png'\n"
       << "set multiplot layout 1,2 title \"" << chart_title(m) << "\\nfault_around_pages="
       << cases.front().fault_around_pages << ", handler_threads=" << cases.front().handler_threads
       << ", handler_spin_us=" << cases.front().handler_spin_us
       << " (anon_single_fault: fault_around_pages=1); medians of " << cases.front().runs << " runs\"\n"
       << "set style data histograms\n"
       << "set style histogram clustered gap 1\n"
       << "set style fill solid 0.85 border -1\n"
       << "set xtics rotate by -35 nomirror\n"
       << "set grid ytics\n"
       << "set key below horizontal\n"
       << "set offsets 0, 0, graph 0.08, 0\n"
       << "set xrange [-0.6:" << double(n) - 0.4 << "]\n"
       << "set title 'median time (log scale, lower is better)'\n"
       << "set ylabel 'ns per page (anon_single_fault: ns per fault)'\n"
       << "set logscale y\n"
       << "plot '" << tmp << "/cases.dat' using 2:xtic(1) title 'faultline' lc rgb '#4477aa', "
       << "'' using 3 title 'baseline' lc rgb '#bbbbbb'\n"
       << "unset logscale y\n"
       << "set title 'ratio faultline / baseline (below 1: faultline is faster)'\n"
       << "set ylabel 'ratio'\n"
       << "set yrange [0:*]\n"
       << "plot '" << tmp << "/cases.dat' using 4:xtic(1) title 'ratio' lc rgb '#4477aa', "
       << "'' using 0:4:(sprintf('%.2f', $4)) with labels offset 0,0.8 notitle, "
       << "1 with lines dt 2 lc rgb 'black' title 'parity'\n"
       << "unset multiplot\n";
    write_file(tmp + "/cases.gp", gp.str());
    run_gnuplot(tmp + "/cases.gp");
}

// One chart per sweep grid: a panel per workload, faultline's median
// against the grid's variable, one line per value of `series` (handler
// threads in the first grid; the second grid has a single series), and the
// native baseline dashed.
struct SweepChart {
    std::string grid;       // Result::sweep_grid of the rows to draw
    std::string file;       // output name inside the charts directory
    std::string subtitle;
    std::string xlabel;
    bool log2_x;
    unsigned (*x)(const Result&);
    unsigned (*series)(const Result&);
    std::string series_label; // "handler_threads=" or ""
};

void plot_sweep_chart(const std::string& dir, const std::string& tmp, const Machine& m, const std::vector<Result>& all,
    const SweepChart& chart)
{
    std::vector<const Result*> rows;
    for (const Result& r : all)
        if (r.sweep_grid == chart.grid && !r.error)
            rows.push_back(&r);
    if (rows.empty())
        return;
    std::vector<std::string> names;
    std::vector<unsigned> series;
    std::vector<unsigned> xs;
    for (const Result* r : rows) {
        if (std::find(names.begin(), names.end(), r->name) == names.end())
            names.push_back(r->name);
        if (std::find(series.begin(), series.end(), chart.series(*r)) == series.end())
            series.push_back(chart.series(*r));
        if (std::find(xs.begin(), xs.end(), chart.x(*r)) == xs.end())
            xs.push_back(chart.x(*r));
    }
    std::sort(series.begin(), series.end());
    std::sort(xs.begin(), xs.end());
    std::string xtics;
    for (unsigned x : xs)
        xtics += (xtics.empty() ? "" : ", ") + std::to_string(x);

    std::ostringstream gp;
    size_t panel_rows = (names.size() + 1) / 2;
    gp << "set terminal pngcairo size 1300," << 420 * panel_rows + 70 << " font ',10' noenhanced\n"
       << "set output '" << dir << "/" << chart.file << "'\n"
       << "set multiplot layout " << panel_rows << ",2 title \"" << chart_title(m) << "\\n" << chart.subtitle
       << " (medians of " << rows.front()->runs << " runs; lower is better)\"\n"
       << "set xtics (" << xtics << ")\n"
       << "set xlabel '" << chart.xlabel << "'\n"
       << "set grid\n"
       << "set key top right\n";
    if (chart.log2_x) {
        // Sizes double from one point to the next, and the costs span more
        // than an order of magnitude: both axes logarithmic, with a margin
        // so that the first and last points are not drawn on the frame.
        gp << "set logscale x 2\n"
           << "set xrange [" << xs.front() / 1.3 << ":" << xs.back() * 1.3 << "]\n"
           << "set logscale y 10\n";
    } else {
        gp << "set offsets graph 0.03, graph 0.03, 0, 0\n"
           << "set yrange [0:*]\n";
    }
    for (size_t i = 0; i < names.size(); ++i) {
        // One data file per workload; within it one block per series
        // (gnuplot's `index`), rows ordered by x.
        std::ostringstream data;
        std::string unit;
        for (unsigned sv : series) {
            std::vector<const Result*> block;
            for (const Result* r : rows)
                if (r->name == names[i] && chart.series(*r) == sv)
                    block.push_back(r);
            std::sort(block.begin(), block.end(),
                [&](const Result* a, const Result* b) { return chart.x(*a) < chart.x(*b); });
            for (const Result* r : block) {
                data << chart.x(*r) << ' ' << r->faultline << ' ' << r->baseline << '\n';
                unit = r->unit;
            }
            data << "\n\n";
        }
        std::string file = tmp + "/" + chart.file + "-" + std::to_string(i) + ".dat";
        write_file(file, data.str());
        gp << "set title '" << names[i] << "'\n"
           << "set ylabel '" << unit << "'\n"
           << "plot ";
        for (size_t k = 0; k < series.size(); ++k) {
            gp << "'" << file << "' index " << k << " using 1:2 with linespoints lw 2 title 'faultline";
            if (!chart.series_label.empty())
                gp << ", " << chart.series_label << series[k];
            gp << "', ";
        }
        // The native baseline was measured next to every configuration; all
        // its rows estimate the same figure, so they are drawn as one line.
        gp << "'" << file << "' index 0 using 1:3 with linespoints dt 2 lc rgb 'black' title 'native (same run)'\n";
    }
    gp << "unset multiplot\n";
    write_file(tmp + "/" + chart.file + ".gp", gp.str());
    run_gnuplot(tmp + "/" + chart.file + ".gp");
}

void plot_sweep(const std::string& dir, const std::string& tmp, const Machine& m, const std::vector<Result>& sweep)
{
    plot_sweep_chart(dir, tmp, m, sweep,
        { "fault_around_pages x handler_threads", "bench-sweep.png",
            "sweep of Config::fault_around_pages x Config::handler_threads", "fault_around_pages", true,
            [](const Result& r) { return r.fault_around_pages; }, [](const Result& r) { return r.handler_threads; },
            "handler_threads=" });
    const Result* spin_row = nullptr;
    for (const Result& r : sweep)
        if (r.sweep_grid == "handler_spin_us")
            spin_row = &r;
    if (!spin_row)
        return;
    plot_sweep_chart(dir, tmp, m, sweep,
        { "handler_spin_us", "bench-sweep-spin.png",
            "sweep of Config::handler_spin_us at fault_around_pages=" + std::to_string(spin_row->fault_around_pages) +
                ", handler_threads=" + std::to_string(spin_row->handler_threads),
            "handler_spin_us", false, [](const Result& r) { return r.handler_spin_us; },
            [](const Result&) { return 0u; }, "" });
}

} // namespace

std::string load_average()
{
    std::string line = read_first_line("/proc/loadavg");
    // Keep the three averages only.
    std::istringstream in(line);
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

Machine describe_machine()
{
    Machine m;
    utsname u {};
    if (uname(&u) == 0)
        m.kernel = u.release;
    m.cpu = proc_field("/proc/cpuinfo", "model name");
    if (m.cpu.empty())
        m.cpu = "unknown";
    m.cores = unsigned(sysconf(_SC_NPROCESSORS_ONLN));
    m.hypervisor = hypervisor_name();
    std::string mem = proc_field("/proc/meminfo", "MemTotal");
    m.memory_bytes = uint64_t(strtoull(mem.c_str(), nullptr, 10)) * 1024;
    m.thp = thp_mode();
    m.cpuidle = cpuidle_description();
    m.page_size = page_size();
    time_t t = time(nullptr);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    m.started_utc = buf;
    m.load_start = load_average();
    return m;
}

void print_table_header()
{
    printf("%-30s %-9s %10s %10s %7s %6s  %-20s %-20s %4s  %s\n", "case", "unit", "faultline", "baseline", "ratio",
        "cpu", "baseline_name", "placement", "runs", "spread f/b");
    fflush(stdout);
}

void print_table_row(const Result& r)
{
    if (r.error) {
        printf("%-30s FAILED: %s\n", r.name.c_str(), r.error->c_str());
    } else {
        // The spread is (max - min) / median of each side's runs: how far to
        // trust the medians on this run.
        // cpu: the process's CPU time over the baseline's for the same
        // work (handler threads included).
        printf("%-30s %-9s %10.1f %10.1f %7.3f %6.2f  %-20s %-20s %4u  %s / %s\n", r.name.c_str(), r.unit.c_str(),
            r.faultline, r.baseline, r.ratio, r.baseline_cpu > 0 ? r.faultline_cpu / r.baseline_cpu : 0.0,
            r.baseline_name.c_str(), r.placement.c_str(), r.runs, pct_range(r.faultline_runs).c_str(),
            pct_range(r.baseline_runs).c_str());
    }
    fflush(stdout);
}

void print_sweep_header(const std::vector<std::string>& workloads)
{
    printf("%-12s %-8s %-7s", "fault_around", "handlers", "spin_us");
    for (const auto& w : workloads)
        printf(" | %-33.33s", w.c_str());
    printf("\n%-12s %-8s %-7s", "", "", "");
    for (size_t i = 0; i < workloads.size(); ++i)
        printf(" | %9s %9s %6s %6s", "faultline", "native", "ratio", "cpu");
    printf("\n");
    fflush(stdout);
}

void print_sweep_row(const std::vector<Result>& row)
{
    if (row.empty())
        return;
    printf("%-5u..%-5u %-8u %-7u", row[0].fault_around_pages, row[0].fault_around_max_pages, row[0].handler_threads,
        row[0].handler_spin_us);
    for (const Result& r : row) {
        if (r.error)
            printf(" | %-33s", "FAILED");
        else
            printf(" | %9.1f %9.1f %6.2f %6.2f", r.faultline, r.baseline, r.ratio,
                r.baseline_cpu > 0 ? r.faultline_cpu / r.baseline_cpu : 0.0);
    }
    printf("\n");
    for (const Result& r : row)
        if (r.error)
            printf("  %s FAILED: %s\n", r.name.c_str(), r.error->c_str());
    fflush(stdout);
}

void write_json(const std::string& path, const Machine& m, const std::vector<Result>& cases,
    const std::vector<Result>& sweep)
{
    Json j;
    j.open('{');
    j.key("machine");
    j.open('{');
    j.field("kernel", m.kernel);
    j.field("cpu", m.cpu);
    j.field_int("cores", m.cores);
    j.field("hypervisor", m.hypervisor);
    j.field_int("memory_bytes", m.memory_bytes);
    j.field("transparent_hugepage", m.thp);
    j.field("cpuidle", m.cpuidle);
    j.field_int("page_size", m.page_size);
    j.field("started_utc", m.started_utc);
    j.field("loadavg_start", m.load_start);
    j.field("loadavg_end", m.load_end);
    j.field("mode", m.mode);
    j.field("userfaultfd", m.uffd_mode);
    j.key("faultline_features");
    j.open('[');
    for (const auto& f : m.faultline_features)
        j.string(f);
    j.close(']');
    j.close('}');
    j.key("cases");
    j.open('[');
    for (const Result& r : cases)
        result_json(j, r);
    j.close(']');
    if (!sweep.empty()) {
        j.key("sweep");
        j.open('[');
        for (const Result& r : sweep)
            result_json(j, r);
        j.close(']');
    }
    j.close('}');
    write_file(path, j.str() + "\n");
}

void plot(const std::string& dir, const Machine& machine, const std::vector<Result>& cases,
    const std::vector<Result>& sweep, const std::string& cases_suffix)
{
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        fail("cannot create " + dir + ": " + ec.message());
    char tmpl[] = "/tmp/faultline-bench-XXXXXX";
    if (!mkdtemp(tmpl))
        fail(std::string("mkdtemp failed: ") + strerror(errno));
    std::string tmp = tmpl;
    try {
        if (!cases.empty())
            plot_cases(dir, tmp, machine, cases, cases_suffix);
        if (!sweep.empty())
            plot_sweep(dir, tmp, machine, sweep);
    } catch (...) {
        std::string rm = "rm -rf '" + tmp + "'";
        (void)!system(rm.c_str());
        throw;
    }
    std::string rm = "rm -rf '" + tmp + "'";
    (void)!system(rm.c_str());
}

} // namespace bench
