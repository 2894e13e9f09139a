// tools/stress/mutator/map_conflict.cc — a fixed-address map over a page some
// slot owns must fail with EEXIST.
#include "mutator.h"

#include <cerrno>
#include <iterator>
#include <mutex>

namespace stress {

namespace {

void map_conflict(Mutator& m, unsigned si, Slot&)
{
    World& w = m.world();
    std::lock_guard reuse(w.reuse_lock);
    if (w.owners.empty())
        return;
    auto it = w.owners.begin();
    std::advance(it, m.rng().below(unsigned(std::min<size_t>(w.owners.size(), 16))));
    MapOptions o;
    o.size = w.page * (1 + m.rng().below(3));
    o.address = reinterpret_cast<void*>(it->first);
    const uintptr_t a = it->first;
    if (a + o.size > w.arena_hi)
        return;
    auto r = m.call("map_anonymous (fixed, conflicting)", a, [&] { return w.rt.map_anonymous(o); });
    m.expect(r, EEXIST, "map_anonymous (fixed, over a mapped page)", si, a, o.size);
    if (r)
        (void)w.rt.unmap(*r, o.size);
}

const RegisterOperation registered { { "map_conflict", { .empty = 4 }, map_conflict } };

} // namespace

} // namespace stress
