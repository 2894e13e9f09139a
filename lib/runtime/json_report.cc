#include "runtime/json_report.h"

#include "support/json_writer.h"

namespace faultline {

namespace {

std::string access_string(Access a)
{
    std::string s = "---";
    if (has(a, Access::Read))
        s[0] = 'r';
    if (has(a, Access::Write))
        s[1] = 'w';
    if (has(a, Access::Execute))
        s[2] = 'x';
    return s;
}

void write_region(JsonWriter& w, const JsonReportInput::Region& region)
{
    const RegionStats& s = region.snapshot.stats;
    w.begin_object();
    w.key("address");
    w.hex(s.base);
    w.field("size", uint64_t(s.size));
    w.field("name", s.name);
    w.field("access", access_string(s.access));
    w.field("max_access", access_string(s.max_access));
    w.field("shared", has(s.flags, RegionFlags::Shared));
    w.field("stack", has(s.flags, RegionFlags::Stack));
    w.field("immutable", has(s.flags, RegionFlags::Immutable));
    w.field("purgeable", has(s.flags, RegionFlags::Purgeable));
    w.field("noreserve", has(s.flags, RegionFlags::NoReserve));
    w.field("clonable", has(s.flags, RegionFlags::Clonable));
    w.field("object", s.object_kind);
    w.field("resident", uint64_t(s.amount_resident));
    w.field("dirty", uint64_t(s.amount_dirty));
    w.field("zero_mapped", uint64_t(s.amount_zero_mapped));
    w.field("cow_pages", uint64_t(s.cow_pages));
    if (s.chain_depth) {
        w.key("cow");
        w.begin_object();
        w.field("shared_pages", uint64_t(s.cow_shared_pages));
        w.field("private_pages", uint64_t(s.cow_private_pages));
        w.field("chain_depth", uint64_t(s.chain_depth));
        w.end_object();
    }
    w.field("zero_faults", s.zero_faults);
    w.field("write_protect_faults", s.write_protect_faults);
    w.field("inode_faults", s.inode_faults);
    if (region.snapshot.file) {
        w.key("file");
        w.begin_object();
        w.field("bytes_read", s.file_bytes_read);
        w.field("bytes_written", s.file_bytes_written);
        w.field("read_errors", s.file_read_errors);
        w.field("readahead_pages", s.readahead_pages);
        w.field("readahead_used", s.readahead_used);
        w.field("dirty_pages", uint64_t(s.dirty_pages));
        w.field("cached_pages", uint64_t(s.cached_pages));
        w.field("evictions_clean", s.evictions_clean);
        w.field("evictions_dirty", s.evictions_dirty);
        w.field("referenced_refaults", s.referenced_refaults);
        w.field("budget", s.budget);
        w.end_object();
    }
    if (has(s.flags, RegionFlags::Purgeable)) {
        w.key("volatility");
        w.begin_object();
        w.field("volatile_bytes", uint64_t(s.volatile_bytes));
        w.field("volatile_resident", uint64_t(s.volatile_resident));
        w.field("nonvolatile_resident", uint64_t(s.nonvolatile_resident));
        w.field("purged_pages", uint64_t(s.purged_pages));
        w.field("purges", s.purges);
        w.field("purged_bytes", s.purged_bytes);
        w.field("purged_refaults", s.purged_refaults);
        w.end_object();
    }
    w.field("pages_installed", s.pages_installed);
    w.field("pages_per_char", uint64_t(region.pages_per_char));
    w.field("page_map", region.page_map);
    w.end_object();
}

} // namespace

std::string json_report(const JsonReportInput& in)
{
    JsonWriter w;
    w.begin_object();
    w.key("arena");
    w.begin_object();
    w.key("base");
    w.hex(in.arena_base);
    w.field("size", uint64_t(in.arena_size));
    w.field("page_size", uint64_t(in.page_size));
    w.end_object();
    w.key("features");
    w.begin_array();
    for (auto& n : in.features)
        w.value(n);
    w.end_array();
    w.field("user_mode_only", in.user_mode_only);
    w.key("regions");
    w.begin_array();
    for (const auto& region : in.regions)
        write_region(w, region);
    w.end_array();
    const RuntimeStats& st = in.stats;
    w.key("faults");
    w.begin_object();
    w.field("events", st.fault_events);
    w.field("deduplicated", st.faults_deduplicated);
    w.field("write_protect", st.write_protect_faults);
    w.field("minor", st.minor_faults);
    w.field("pending", st.faults_pending);
    w.field("completions", st.completions);
    w.field("pending_table_full", st.pending_table_full);
    w.field("pages_installed", st.pages_installed);
    w.field("batches", st.batches);
    w.field("wakes", st.wakes);
    w.field("eexist", st.eexist);
    w.field("eagain_retries", st.eagain_retries);
    w.field("stale", st.stale_faults);
    w.field("sigbus", st.sigbus_delivered);
    w.end_object();
    w.key("commit");
    w.begin_object();
    w.field("committed", uint64_t(st.committed));
    w.field("limit", uint64_t(st.commit_limit));
    w.end_object();
    w.key("budget");
    w.begin_object();
    w.field("budget", st.memory_budget);
    w.field("resident", st.budget_resident_bytes);
    w.field("evictions_clean", st.evictions_clean);
    w.field("evictions_dirty", st.evictions_dirty);
    w.field("write_errors", st.eviction_write_errors);
    w.field("referenced_refaults", st.referenced_refaults);
    w.field("waits", st.budget_waits);
    w.field("overruns", st.budget_overruns);
    w.end_object();
    w.key("swap");
    w.begin_object();
    w.field("enabled", st.swap_enabled);
    w.field("swapped_out", st.swapped_out);
    w.field("swapped_in", st.swapped_in);
    w.field("clean_drops", st.swap_clean_drops);
    w.field("write_errors", st.swap_write_errors);
    w.field("read_errors", st.swap_read_errors);
    w.field("slots_reclaimed", st.swap_slots_reclaimed);
    w.field("slots_used", st.swap_slots_used);
    w.field("slots_total", st.swap_slots_total);
    w.field("full_events", st.swap_full_events);
    w.end_object();
    const PurgeStats& pu = in.purge;
    w.key("purge");
    w.begin_object();
    w.field("volatile_bytes", uint64_t(pu.volatile_bytes));
    w.field("volatile_resident", uint64_t(pu.volatile_resident));
    w.field("nonvolatile_resident", uint64_t(pu.nonvolatile_resident));
    w.field("reclaimable", uint64_t(pu.reclaimable));
    w.field("purges", pu.purges);
    w.field("purged_bytes", pu.purged_bytes);
    w.field("purged_refaults", pu.purged_refaults);
    w.field("vetoes", pu.vetoes);
    w.field("pressure_events", pu.pressure_events);
    w.field("budget_purges", pu.budget_purges);
    w.field("commit_purges", pu.commit_purges);
    w.field("pressure_trigger_open", pu.pressure_trigger_open);
    w.end_object();
    w.key("stat_endpoint");
    w.begin_object();
    w.field("socket", in.stat_address);
    w.field("replies", st.stat_replies);
    w.field("refused", st.stat_refused);
    w.end_object();
    w.key("threads");
    w.begin_array();
    for (auto& t : st.threads) {
        w.begin_object();
        w.field("tid", t.tid);
        w.field("faults", t.faults);
        w.end_object();
    }
    w.end_array();
    w.end_object();
    return w.str();
}

} // namespace faultline
