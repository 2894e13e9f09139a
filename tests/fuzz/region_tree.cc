// Fuzz target `region_tree`: RegionTree (lib/memory/region_tree.h) — placement
// through its allocator, insert and remove, and the lookups the fault path
// and the API path make — checked after every operation against a std::map
// of the regions (base -> end).
//
// Each region carries its model key as its name, so a lookup is checked to
// return the right Region object, not merely one at the right address.
//
// The queries keep RegionTree's precondition: base + size does not wrap (the
// runtime's validate_range refuses such ranges before any lookup; the c_api
// target fuzzes that path through the public API).
#include "fuzz_input.h"

#include "memory/objects/anonymous_vm_object.h"
#include "memory/region_tree.h"

#include <cerrno>
#include <iterator>
#include <map>
#include <string>

using faultline::Access;
using faultline::memory::AnonymousVMObject;
using faultline::memory::Range;
using faultline::memory::Region;
using faultline::memory::RegionTree;

namespace {

constexpr size_t kPage = 4096;
constexpr uintptr_t kBase = 0x60000000;

using Model = std::map<uintptr_t, uintptr_t>; // base -> end

std::unique_ptr<Region> new_region(Range range)
{
    auto object = AnonymousVMObject::try_create_with_size(range.size, kPage);
    FUZZ_CHECK(object, "AnonymousVMObject of %#zx bytes: %s", range.size, object ? "" : object.error().message());
    Region::Params p;
    p.range = range;
    p.object = *object;
    p.name = std::to_string(range.base);
    p.access = Access::ReadWrite;
    p.max_access = Access::ReadWrite;
    auto r = Region::try_create(std::move(p));
    FUZZ_CHECK(r, "Region::try_create: %s", r ? "" : r.error().message());
    return std::move(*r);
}

const Model::value_type* model_find(const Model& m, uintptr_t a)
{
    auto it = m.upper_bound(a);
    if (it == m.begin())
        return nullptr;
    --it;
    return a < it->second ? &*it : nullptr;
}

// The tree's answer for `a` must be the model's region, that very object.
void check_find(const RegionTree& tree, const Model& m, uintptr_t a)
{
    Region* r = tree.find_region_containing(a);
    auto* want = model_find(m, a);
    FUZZ_CHECK(!r == !want, "find_region_containing(%#lx): %s, model %s", a, r ? "a region" : "none",
               want ? "a region" : "none");
    if (r) {
        FUZZ_CHECK(r->base() == want->first && r->end() == want->second && r->name() == std::to_string(want->first),
                   "find_region_containing(%#lx) gave %#lx-%#lx, model %#lx-%#lx", a, r->base(), r->end(),
                   want->first, want->second);
    }
}

void check_overlapping(const RegionTree& tree, const Model& m, uintptr_t a, size_t n)
{
    std::vector<Region*> got = tree.regions_overlapping(a, n);
    std::vector<Model::value_type> want;
    for (auto& [base, end] : m)
        if (base < a + n && end > a)
            want.push_back({ base, end });
    FUZZ_CHECK(got.size() == want.size(), "regions_overlapping(%#lx, %#zx): %zu regions, model %zu", a, n, got.size(),
               want.size());
    for (size_t i = 0; i < got.size(); ++i)
        FUZZ_CHECK(got[i]->base() == want[i].first && got[i]->end() == want[i].second,
                   "regions_overlapping(%#lx, %#zx)[%zu] is %#lx-%#lx, model %#lx-%#lx", a, n, i, got[i]->base(),
                   got[i]->end(), want[i].first, want[i].second);
    // covers: the overlapping regions leave no hole in [a, a+n).
    uintptr_t at = a;
    for (auto& [base, end] : want) {
        if (base > at)
            break;
        at = end;
    }
    bool covered = at >= a + n;
    FUZZ_CHECK(tree.covers(a, n) == covered, "covers(%#lx, %#zx): %d, model %d", a, n, !covered, covered);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    fuzz::Input in(data, size);
    const size_t pages = 1 + in.u8() % 96;
    RegionTree tree(kBase, pages * kPage, kPage);
    Model m;

    // Addresses in and around the arena, page-aligned or not.
    auto address = [&] {
        long page = long(in.u8() % (pages + 8)) - 4;
        uintptr_t a = kBase + uintptr_t(page) * kPage;
        return in.flag() ? a + in.u16() % kPage : a;
    };

    for (int ops = 0; !in.done() && ops < 256; ++ops) {
        switch (in.u8() % 6) {
        case 0:
        case 1: {
            // Placement, then the region goes in the tree (as Mapper does).
            size_t n = (1 + in.u8() % 16) * kPage;
            faultline::Result<Range> placed = in.flag() ? tree.place_anywhere(n, kPage << (in.u8() % 4))
                                                        : tree.place_specifically(address() & ~(kPage - 1), n);
            if (!placed)
                break; // RangeAllocator's answers are checked by its own target
            FUZZ_CHECK(placed->size == n, "placed %#zx bytes for %#zx", placed->size, n);
            // The placement must not overlap any region: the allocator and
            // the tree agree about what is taken.
            for (uintptr_t p = placed->base; p < placed->end(); p += kPage)
                FUZZ_CHECK(!model_find(m, p), "placed %#lx+%#zx over a region at %#lx", placed->base, n, p);
            tree.insert(new_region(*placed));
            m[placed->base] = placed->end();
            break;
        }
        case 2:
            // Removal of the region at (or around) an address, and its range
            // back to the allocator (as unmap does).
            if (Region* r = tree.find_region_containing(address())) {
                Range range = r->range();
                std::unique_ptr<Region> gone = tree.remove(*r);
                auto freed = tree.release_range(range);
                FUZZ_CHECK(freed, "release_range(%#lx+%#zx): %s", range.base, range.size,
                           freed ? "" : freed.error().message());
                FUZZ_CHECK(m.erase(range.base) == 1, "removed %#lx, not in the model", range.base);
            }
            break;
        case 3:
            check_find(tree, m, address());
            break;
        case 4: {
            uintptr_t a = address();
            check_overlapping(tree, m, a, in.u8() % ((pages + 8) * kPage / 64 + 1) * 64);
            break;
        }
        case 5:
            // Region boundaries are where off-by-one lookups go wrong.
            if (!m.empty()) {
                auto it = std::next(m.begin(), in.u8() % m.size());
                check_find(tree, m, it->first - 1);
                check_find(tree, m, it->first);
                check_find(tree, m, it->second - 1);
                check_find(tree, m, it->second);
            }
            break;
        }
        FUZZ_CHECK(tree.region_count() == m.size(), "region_count %zu, model %zu", tree.region_count(), m.size());
        // Free space and regions partition the arena.
        size_t used = 0;
        for (auto& [base, end] : m)
            used += end - base;
        FUZZ_CHECK(tree.free_space().free_bytes() + used == pages * kPage, "free %zu + regions %zu != arena %zu",
                   tree.free_space().free_bytes(), used, pages * kPage);
    }
    return 0;
}
