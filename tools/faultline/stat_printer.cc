#include "stat_printer.h"

#include <cinttypes>

namespace faultline::cli {

namespace {

// Region flags as one letter each, "-" when clear.
std::string flag_letters(const JsonValue& region)
{
    static constexpr struct {
        const char* key;
        char letter;
    } kFlags[] = { { "shared", 's' }, { "stack", 'k' }, { "immutable", 'i' }, { "purgeable", 'p' }, { "noreserve", 'n' },
        { "clonable", 'c' } };
    std::string out;
    for (const auto& f : kFlags) {
        const JsonValue* v = region.get(f.key);
        out += v && v->boolean() ? f.letter : '-';
    }
    return out;
}

std::string text(const JsonValue& object, std::string_view key)
{
    const JsonValue* v = object.get(key);
    return v ? std::string(v->string()) : std::string();
}

} // namespace

std::string StatPrinter::bytes(uint64_t n)
{
    static constexpr const char* kUnits[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    if (n < 1024)
        return std::to_string(n) + " B";
    double v = double(n) / 1024;
    size_t unit = 0;
    while (v >= 1024 && unit + 1 < std::size(kUnits)) {
        v /= 1024;
        ++unit;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
    return buf;
}

void StatPrinter::print(std::string_view address, const JsonValue& report) const
{
    header(address, report);
    regions(report);
    counters(report);
}

void StatPrinter::header(std::string_view address, const JsonValue& report) const
{
    fprintf(out_, "runtime %.*s\n", int(address.size()), address.data());
    std::string features;
    if (const JsonValue* list = report.get("features"))
        for (const JsonValue& f : list->items())
            features += (features.empty() ? "" : " ") + std::string(f.string());
    const JsonValue* user_mode = report.get("user_mode_only");
    fprintf(out_, "arena     0x%" PRIx64 ", %s, page %" PRIu64 "%s\n", number_at(report, { "arena", "base" }),
        bytes(number_at(report, { "arena", "size" })).c_str(), number_at(report, { "arena", "page_size" }),
        user_mode && user_mode->boolean() ? ", user-mode-only" : "");
    fprintf(out_, "features  %s\n\n", features.empty() ? "(none)" : features.c_str());
}

void StatPrinter::regions(const JsonValue& report) const
{
    const JsonValue* list = report.get("regions");
    const size_t count = list ? list->items().size() : 0;
    fprintf(out_, "%-18s %10s %-6s %-6s %-16s %10s %10s %8s  %s\n", "ADDRESS", "SIZE", "ACCESS", "FLAGS", "OBJECT",
        "RESIDENT", "DIRTY", "FAULTS", "NAME");
    if (list)
        for (const JsonValue& r : list->items()) {
            const uint64_t faults = number_at(r, { "zero_faults" }) + number_at(r, { "write_protect_faults" })
                + number_at(r, { "inode_faults" });
            fprintf(out_, "0x%-16" PRIx64 " %10s %-6s %-6s %-16s %10s %10s %8" PRIu64 "  %s\n",
                number_at(r, { "address" }), bytes(number_at(r, { "size" })).c_str(), text(r, "access").c_str(),
                flag_letters(r).c_str(), text(r, "object").c_str(), bytes(number_at(r, { "resident" })).c_str(),
                bytes(number_at(r, { "dirty" })).c_str(), faults, text(r, "name").c_str());
        }
    fprintf(out_, "(%zu region%s; flags: s shared, k stack, i immutable, p purgeable, n noreserve, c clonable)\n\n", count,
        count == 1 ? "" : "s");
}

void StatPrinter::counters(const JsonValue& report) const
{
    auto n = [&](std::string_view object, std::string_view key) { return number_at(report, { object, key }); };
    fprintf(out_,
        "faults    %" PRIu64 " events in %" PRIu64 " batches, %" PRIu64 " pages installed, %" PRIu64
        " write-protect, %" PRIu64 " minor, %" PRIu64 " pending, %" PRIu64 " stale, %" PRIu64 " SIGBUS\n",
        n("faults", "events"), n("faults", "batches"), n("faults", "pages_installed"), n("faults", "write_protect"),
        n("faults", "minor"), n("faults", "pending"), n("faults", "stale"), n("faults", "sigbus"));
    fprintf(out_, "commit    %s of %s\n", bytes(n("commit", "committed")).c_str(), bytes(n("commit", "limit")).c_str());
    if (const uint64_t budget = n("budget", "budget"))
        fprintf(out_, "budget    %s resident of %s, %" PRIu64 " evicted clean, %" PRIu64 " dirty, %" PRIu64 " waits, %" PRIu64 " overruns\n",
            bytes(n("budget", "resident")).c_str(), bytes(budget).c_str(), n("budget", "evictions_clean"),
            n("budget", "evictions_dirty"), n("budget", "waits"), n("budget", "overruns"));
    if (n("purge", "volatile_bytes") || n("purge", "purges"))
        fprintf(out_, "purge     %s volatile (%s resident), %" PRIu64 " purges, %s purged\n",
            bytes(n("purge", "volatile_bytes")).c_str(), bytes(n("purge", "volatile_resident")).c_str(),
            n("purge", "purges"), bytes(n("purge", "purged_bytes")).c_str());
    fprintf(out_, "endpoint  %" PRIu64 " replies, %" PRIu64 " refused\n", n("stat_endpoint", "replies"),
        n("stat_endpoint", "refused"));
    if (const JsonValue* threads = report.get("threads"); threads && !threads->items().empty()) {
        fprintf(out_, "threads  ");
        for (const JsonValue& t : threads->items())
            fprintf(out_, " %" PRIu64 ":%" PRIu64, number_at(t, { "tid" }), number_at(t, { "faults" }));
        fprintf(out_, " (tid:faults)\n");
    }
}

} // namespace faultline::cli
