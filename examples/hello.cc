// The smallest faultline program: map a region, touch it, read the counters.
#include <faultline/runtime.h>

#include <cstdio>
#include <cstring>

int main()
{
    auto runtime = faultline::Runtime::create();
    if (!runtime) {
        std::fprintf(stderr, "faultline: %s\n", runtime.error().message());
        return 1;
    }
    auto& rt = **runtime;
    const size_t size = size_t(64) << 20;
    auto mem = rt.map_anonymous({ .size = size, .name = "hello" });
    if (!mem) {
        std::fprintf(stderr, "map: %s\n", mem.error().message());
        return 1;
    }
    auto* bytes = static_cast<char*>(*mem);
    std::memset(bytes, 'x', size); // every page fault here is served by faultline
    auto stats = rt.region_stats(bytes).value();
    std::printf("resident %zu MiB after %llu faults (%llu pages installed)\n", stats.amount_resident >> 20,
        (unsigned long long)stats.zero_faults, (unsigned long long)stats.pages_installed);
    return rt.unmap(bytes, size) ? 0 : 1;
}
