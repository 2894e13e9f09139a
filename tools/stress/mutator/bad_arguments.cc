// tools/stress/mutator/bad_arguments.cc — invalid arguments are refused with
// the documented errno and change nothing.
#include "mutator.h"

#include <cerrno>

namespace stress {

namespace {

void bad_arguments(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    Rng& rng = m.rng();
    const size_t page = w.page;
    const bool live = s.live.load(std::memory_order_relaxed);
    const uintptr_t a = live ? m.address(s, 0) : w.arena_lo;
    void* p = reinterpret_cast<void*>(a);
    auto bad_map = [&](const MapOptions& o, int expected, const char* what) {
        auto r = m.call("map_anonymous (bad arguments)", 0, [&] { return w.rt.map_anonymous(o); });
        m.expect(r, expected, what, si, uintptr_t(o.address), o.size);
        if (r) // it must not have succeeded; give it back so no check trips on it later
            (void)w.rt.unmap(*r, o.size);
    };
    MapOptions o;
    o.size = page;
    switch (rng.below(13)) {
    case 0:
        o.size = 0;
        bad_map(o, EINVAL, "map_anonymous (size 0)");
        break;
    case 1:
        o.size = page + 1;
        bad_map(o, EINVAL, "map_anonymous (size not a page multiple)");
        break;
    case 2:
        o.alignment = 3 * page;
        bad_map(o, EINVAL, "map_anonymous (alignment not a power of two)");
        break;
    case 3:
        o.access = Access::ReadWriteExecute;
        bad_map(o, EACCES, "map_anonymous (W+X)");
        break;
    case 4:
        o.max_access = Access::Read;
        bad_map(o, EINVAL, "map_anonymous (access beyond max_access)");
        break;
    case 5:
        o.name = "a]b";
        bad_map(o, EINVAL, "map_anonymous (bad name)");
        break;
    case 6:
        if (rng.percent(50)) {
            o.flags = RegionFlags(1u << 20);
            bad_map(o, EINVAL, "map_anonymous (unknown flag)");
        } else {
            // Reserved for the roadmap and refused until it exists (types.h).
            o.flags = RegionFlags::Purgeable;
            bad_map(o, EOPNOTSUPP, "map_anonymous (purgeable)");
        }
        break;
    case 7:
        o.size = w.arena_hi - w.arena_lo + page;
        bad_map(o, ENOMEM, "map_anonymous (larger than the arena)");
        break;
    case 8:
        o.address = reinterpret_cast<void*>(w.arena_hi);
        bad_map(o, EINVAL, "map_anonymous (fixed, outside the arena)");
        break;
    case 9:
        m.refuse(si, a + 8, page, EINVAL, "unmap (misaligned)", "unmap (misaligned)",
            [&] { return w.rt.unmap(reinterpret_cast<char*>(p) + 8, page); });
        break;
    case 10:
        m.refuse(si, w.arena_hi, page, EINVAL, "unmap (outside)", "unmap (outside the arena)",
            [&] { return w.rt.unmap(reinterpret_cast<void*>(w.arena_hi), page); });
        break;
    case 11:
        m.refuse(si, a, page, EINVAL, "protect (bad access)", "protect (unknown access bits)",
            [&] { return w.rt.protect(p, page, Access(8)); });
        break;
    default:
        m.refuse(si, a, 0, EINVAL, "discard (size 0)", "discard (size 0)", [&] { return w.rt.discard(p, 0); });
        break;
    }
}

const RegisterOperation registered { { "bad_arguments", { .empty = 4, .cold = 7 }, bad_arguments } };

} // namespace

} // namespace stress
