// bench/purge_workloads.cc — purge_refault_1g and volatile_toggle_1m.
#include "purge_workloads.h"

#include "purge_mappers.h"

#include <cstring>
#include <sys/mman.h>

namespace bench {

namespace {

void write_every_page(char* base, size_t bytes, char value)
{
    for (size_t at = 0; at < bytes; at += page_size())
        static_cast<volatile char*>(base)[at] = value;
}

void check_every_page(const char* base, size_t bytes, char value)
{
    for (size_t at = 0; at < bytes; at += page_size())
        if (base[at] != value)
            fail("page at offset " + std::to_string(at) + " holds " + std::to_string(int(base[at])) + ", expected "
                + std::to_string(int(value)));
}

} // namespace

PurgeCase purge_refault(std::string name, size_t bytes, const faultline::Config& config)
{
    auto fl = std::make_unique<PurgeableMapper>(config, [](faultline::Runtime& rt, char* base, size_t n) {
        write_every_page(base, n, 1);
        if (auto v = rt.set_volatile(base, n); !v)
            fail(std::string("set_volatile failed: ") + v.error().message());
    });
    auto native = std::make_unique<PreparedNativeMapper>([](char* base, size_t n) { write_every_page(base, n, 1); });
    PurgeCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ms";
    w.bytes = bytes;
    w.units = 1000000; // nanoseconds per millisecond
    w.run = [m = fl.get(), bytes](char* base) {
        faultline::Runtime& rt = m->runtime();
        const uint64_t t0 = now_ns();
        auto purged = rt.purge(faultline::kPurgeAll);
        auto back = rt.set_nonvolatile(base, bytes);
        write_every_page(base, bytes, 2);
        const uint64_t elapsed = now_ns() - t0;
        if (!purged || purged->purged_bytes != bytes)
            fail("purge dropped " + std::to_string(purged ? purged->purged_bytes : 0) + " bytes, expected " + std::to_string(bytes));
        if (!back || back->purged_ranges.size() != 1 || back->purged_ranges[0].address != base
            || back->purged_ranges[0].size != bytes)
            fail("set_nonvolatile did not report the whole range purged");
        return elapsed;
    };
    w.verify = [bytes](const char* base) { check_every_page(base, bytes, 2); };
    w.baseline_run = [bytes](char* base) {
        const uint64_t t0 = now_ns();
        if (madvise(base, bytes, MADV_DONTNEED) != 0)
            fail(std::string("madvise failed: ") + strerror(errno));
        write_every_page(base, bytes, 2);
        return now_ns() - t0;
    };
    w.baseline_verify = w.verify;
    c.faultline = std::move(fl);
    c.baseline = std::move(native);
    return c;
}

PurgeCase volatile_toggle(std::string name, size_t bytes, size_t pairs, const faultline::Config& config)
{
    auto fl = std::make_unique<PurgeableMapper>(config, [](faultline::Runtime&, char* base, size_t n) { write_every_page(base, n, 3); });
    auto native = std::make_unique<PreparedNativeMapper>([](char* base, size_t n) { write_every_page(base, n, 3); });
    PurgeCase c;
    Workload& w = c.workload;
    w.name = std::move(name);
    w.unit = "ns/pair";
    w.bytes = bytes;
    w.units = pairs;
    w.run = [m = fl.get(), bytes, pairs](char* base) {
        faultline::Runtime& rt = m->runtime();
        bool ok = true;
        const uint64_t t0 = now_ns();
        for (size_t i = 0; i < pairs; ++i) {
            ok &= bool(rt.set_volatile(base, bytes));
            auto back = rt.set_nonvolatile(base, bytes);
            ok &= back && !back->purged;
        }
        const uint64_t elapsed = now_ns() - t0;
        if (!ok)
            fail("a set_volatile / set_nonvolatile pair failed or reported a purge nobody asked for");
        return elapsed;
    };
    w.verify = [bytes](const char* base) { check_every_page(base, bytes, 3); };
    w.baseline_run = [bytes, pairs](char* base) {
        int rc = 0;
        const uint64_t t0 = now_ns();
        for (size_t i = 0; i < pairs; ++i) {
            rc |= mprotect(base, bytes, PROT_READ);
            rc |= mprotect(base, bytes, PROT_READ | PROT_WRITE);
        }
        const uint64_t elapsed = now_ns() - t0;
        if (rc != 0)
            fail(std::string("mprotect failed: ") + strerror(errno));
        return elapsed;
    };
    w.baseline_verify = w.verify;
    c.faultline = std::move(fl);
    c.baseline = std::move(native);
    return c;
}

} // namespace bench
