// bench/placement.cc — CPU affinity helpers.
#include "placement.h"

#include "bench.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace bench {

std::vector<int> allowed_cpus()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return cpus;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &set))
            cpus.push_back(cpu);
    return cpus;
}

PinnedTo::PinnedTo(int cpu)
{
    if (sched_getaffinity(0, sizeof saved_, &saved_) != 0)
        fail(std::string("sched_getaffinity failed: ") + strerror(errno));
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0)
        fail("cannot pin to CPU " + std::to_string(cpu) + ": " + strerror(errno));
}

PinnedTo::~PinnedTo() { (void)sched_setaffinity(0, sizeof saved_, &saved_); }

} // namespace bench
