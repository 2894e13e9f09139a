// tools/stress/mutator/query.cc — read-only queries of the whole runtime,
// racing with everything else. They concern no slot, so the mutator loop
// runs them between operations rather than drawing them from the table.
#include "mutator.h"

namespace stress {

void run_query(Mutator& m)
{
    World& w = m.world();
    switch (m.rng().below(3)) {
    case 0: {
        auto regions = m.call("regions", 0, [&] { return w.rt.regions(); });
        for (size_t i = 1; i < regions.size(); ++i)
            if (regions[i].base < regions[i - 1].base + regions[i - 1].size)
                failure("%s: regions() is not sorted and disjoint: %#lx+%zu then %#lx+%zu", m.who(), (unsigned long)regions[i - 1].base,
                    regions[i - 1].size, (unsigned long)regions[i].base, regions[i].size);
        break;
    }
    case 1: {
        auto json = m.call("to_json", 0, [&] { return w.rt.to_json(); });
        if (json.empty() || json.front() != '{' || json.back() != '}')
            failure("%s: to_json() returned something that is not a JSON object (%zu bytes)", m.who(), json.size());
        break;
    }
    default:
        (void)m.call("stats", 0, [&] { return w.rt.stats(); });
        break;
    }
}

} // namespace stress
