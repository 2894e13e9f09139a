// fault/service_counters.h — the fault service's counters, in one place.
//
// Relaxed atomics written by handler threads; RuntimeStats is read from
// here. Per-region counts by kind of fill live in memory::FaultCounters,
// per-thread counts in ThreadFaultCounters.
#pragma once

#include "uffd/fill_result.h"

#include <faultline/types.h>

#include <atomic>
#include <cstdint>

namespace faultline::fault {

struct ServiceCounters {
    std::atomic<uint64_t> fault_events { 0 };
    std::atomic<uint64_t> deduplicated { 0 };
    std::atomic<uint64_t> write_protect_faults { 0 };
    std::atomic<uint64_t> minor_faults { 0 };
    std::atomic<uint64_t> pending { 0 };
    std::atomic<uint64_t> completions { 0 };
    std::atomic<uint64_t> stale_completions { 0 };
    std::atomic<uint64_t> table_full { 0 };
    std::atomic<uint64_t> wakes { 0 };
    std::atomic<uint64_t> stale { 0 };
    std::atomic<uint64_t> sigbus { 0 };
    std::atomic<uint64_t> batches { 0 };
    uffd::FillCounters fills;

    static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept { c.fetch_add(n, std::memory_order_relaxed); }

    // Adds these counters to `s` (a runtime with two userfaultfds has two
    // fault services).
    void fill(RuntimeStats& s) const noexcept
    {
        s.fault_events += fault_events.load();
        s.faults_deduplicated += deduplicated.load();
        s.write_protect_faults += write_protect_faults.load();
        s.minor_faults += minor_faults.load();
        s.faults_pending += pending.load();
        s.completions += completions.load();
        s.pending_table_full += table_full.load();
        s.pages_installed += fills.pages_installed.load();
        s.wakes += wakes.load();
        s.eexist += fills.eexist.load();
        s.eagain_retries += fills.eagain_retries.load();
        s.stale_faults += stale.load();
        s.sigbus_delivered += sigbus.load();
        s.batches += batches.load();
    }
};

} // namespace faultline::fault
