// Fuzz target `range_allocator`: RangeAllocator (lib/memory/range_allocator.h)
// driven by an operation sequence and checked after every operation against
// a page bitmap of the arena.
//
// The bitmap is the reference because it is obviously right: a page is free
// or taken, nothing else. From it the target derives every answer the
// allocator must give — the error of each refused call, the exact range best
// fit must pick (the smallest free run that holds the block at its alignment,
// the lowest such run on a tie, as the (size, address) tree orders them), and
// the free ranges after each call (coalesced: no two touch).
#include "fuzz_input.h"

#include "memory/range_allocator.h"

#include <cerrno>
#include <vector>

using faultline::memory::Range;
using faultline::memory::RangeAllocator;

namespace {

constexpr size_t kPage = 4096;

struct Model {
    uintptr_t base;
    size_t pages;
    std::vector<bool> taken;

    size_t size() const { return pages * kPage; }
    uintptr_t end() const { return base + size(); } // never wraps: see arena_base
    // The pages of [a, a+n) (both page multiples, inside the arena).
    size_t first(uintptr_t a) const { return (a - base) / kPage; }
    bool any(uintptr_t a, size_t n, bool value) const
    {
        for (size_t p = first(a); p < first(a) + n / kPage; ++p)
            if (taken[p] == value)
                return true;
        return false;
    }
    void set(uintptr_t a, size_t n, bool value)
    {
        for (size_t p = first(a); p < first(a) + n / kPage; ++p)
            taken[p] = value;
    }
    // The maximal free runs, in address order.
    std::vector<Range> free_runs() const
    {
        std::vector<Range> runs;
        for (size_t p = 0; p < pages;) {
            if (taken[p]) {
                ++p;
                continue;
            }
            size_t q = p;
            while (q < pages && !taken[q])
                ++q;
            runs.push_back({ base + p * kPage, (q - p) * kPage });
            p = q;
        }
        return runs;
    }
};

// Arenas at an ordinary address and at the top of the address space, where
// base + size comes within a page of wrapping: the allocator's bound checks
// are written to survive that.
uintptr_t arena_base(uint8_t choice, size_t size)
{
    if (choice & 1)
        return uintptr_t(0) - kPage - size;
    return 0x60000000;
}

// Sizes: mostly whole pages (up to a little more than the arena), sometimes
// unaligned, sometimes any 64-bit value.
size_t pick_size(fuzz::Input& in, const Model& m)
{
    uint8_t mode = in.u8() % 8;
    if (mode == 6)
        return in.u64();
    size_t n = (in.u8() % (m.pages + 4)) * kPage;
    return mode == 7 ? n + in.u8() % kPage : n;
}

// Addresses: mostly page boundaries in and around the arena, sometimes
// unaligned, sometimes anything.
uintptr_t pick_address(fuzz::Input& in, const Model& m)
{
    uint8_t mode = in.u8() % 8;
    if (mode == 6)
        return in.u64();
    long page = long(in.u16() % (m.pages + 32)) - 16;
    uintptr_t a = m.base + uintptr_t(page) * kPage;
    return mode == 7 ? a + in.u8() % kPage : a;
}

bool inside(const Model& m, uintptr_t a, size_t n)
{
    return a >= m.base && a - m.base < m.size() && n <= m.size() - (a - m.base);
}

int code(const faultline::Result<Range>& r) { return r ? 0 : r.error().code(); }
int code(const faultline::Result<void>& r) { return r ? 0 : r.error().code(); }

void allocate_specific(RangeAllocator& alloc, Model& m, uintptr_t a, size_t n, std::vector<Range>& taken)
{
    int want = 0;
    if (n == 0 || n % kPage || a % kPage || !inside(m, a, n))
        want = EINVAL;
    else if (m.any(a, n, true))
        want = EEXIST;
    auto r = alloc.allocate_specific(a, n);
    FUZZ_CHECK(code(r) == want, "allocate_specific(%#lx, %#zx): %d, model %d", a, n, code(r), want);
    if (r) {
        FUZZ_CHECK(r->base == a && r->size == n, "allocate_specific(%#lx, %#zx) gave %#lx+%#zx", a, n, r->base, r->size);
        m.set(a, n, true);
        taken.push_back(*r);
    }
}

void allocate_anywhere(RangeAllocator& alloc, Model& m, size_t n, size_t alignment, std::vector<Range>& taken)
{
    int want = 0;
    uintptr_t want_at = 0;
    if (n == 0 || n % kPage || alignment < kPage || (alignment & (alignment - 1)))
        want = EINVAL;
    else {
        // Strict best fit: the smallest run that holds the aligned block;
        // runs come in address order, so `<` keeps the lowest on a tie.
        size_t best = 0;
        for (Range run : m.free_runs()) {
            uintptr_t at = (run.base + alignment - 1) & ~(alignment - 1);
            if (at < run.base || at - run.base >= run.size || run.end() - at < n)
                continue;
            if (!best || run.size < best) {
                best = run.size;
                want_at = at;
            }
        }
        if (!best)
            want = ENOMEM;
    }
    auto r = alloc.allocate_anywhere(n, alignment);
    FUZZ_CHECK(code(r) == want, "allocate_anywhere(%#zx, %#zx): %d, model %d", n, alignment, code(r), want);
    if (r) {
        FUZZ_CHECK(r->base == want_at && r->size == n, "allocate_anywhere(%#zx, %#zx) gave %#lx+%#zx, best fit is %#lx",
                   n, alignment, r->base, r->size, want_at);
        m.set(r->base, n, true);
        taken.push_back(*r);
    }
}

void free_range(RangeAllocator& alloc, Model& m, Range range)
{
    int want = 0;
    if (range.size == 0 || range.base % kPage || range.size % kPage || !inside(m, range.base, range.size))
        want = EINVAL;
    else if (m.any(range.base, range.size, false))
        want = EINVAL; // (partly) free already
    auto r = alloc.free(range);
    FUZZ_CHECK(code(r) == want, "free(%#lx+%#zx): %d, model %d", range.base, range.size, code(r), want);
    if (r)
        m.set(range.base, range.size, false);
}

void check_free_ranges(const RangeAllocator& alloc, const Model& m)
{
    std::vector<Range> runs = m.free_runs(), ranges;
    alloc.for_each_free([&](Range r) { ranges.push_back(r); });
    FUZZ_CHECK(ranges.size() == runs.size(), "%zu free ranges, model %zu", ranges.size(), runs.size());
    size_t bytes = 0;
    for (size_t i = 0; i < runs.size(); ++i) {
        FUZZ_CHECK(ranges[i].base == runs[i].base && ranges[i].size == runs[i].size,
                   "free range %zu is %#lx+%#zx, model %#lx+%#zx", i, ranges[i].base, ranges[i].size, runs[i].base,
                   runs[i].size);
        bytes += runs[i].size;
    }
    FUZZ_CHECK(alloc.free_bytes() == bytes, "free_bytes %zu, model %zu", alloc.free_bytes(), bytes);
    FUZZ_CHECK(alloc.free_range_count() == runs.size(), "free_range_count %zu, model %zu", alloc.free_range_count(),
               runs.size());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    fuzz::Input in(data, size);
    const size_t pages = 1 + in.u8() % 128;
    Model m { arena_base(in.u8(), pages * kPage), pages, std::vector<bool>(pages) };
    RangeAllocator alloc(m.base, m.size(), kPage);
    std::vector<Range> taken; // what was allocated, for frees of real ranges

    for (int ops = 0; !in.done() && ops < 512; ++ops) {
        switch (in.u8() % 5) {
        case 0:
            allocate_specific(alloc, m, pick_address(in, m), pick_size(in, m), taken);
            break;
        case 1: {
            size_t n = pick_size(in, m);
            uint8_t a = in.u8();
            size_t alignment = a < 200 ? kPage << (a % 8) : in.u64();
            allocate_anywhere(alloc, m, n, alignment, taken);
            break;
        }
        case 2:
        case 3:
            // A range allocated earlier, whole or a page-aligned piece of it
            // (freeing a piece is allowed: the allocator keeps no records of
            // allocations, only free space).
            if (!taken.empty()) {
                size_t i = in.u16() % taken.size();
                Range r = taken[i];
                size_t skip = (in.u8() % (r.size / kPage)) * kPage;
                size_t keep = (1 + in.u8() % ((r.size - skip) / kPage)) * kPage;
                if (in.flag()) {
                    skip = 0;
                    keep = r.size;
                }
                free_range(alloc, m, { r.base + skip, keep });
                if (skip == 0 && keep == r.size) {
                    taken[i] = taken.back();
                    taken.pop_back();
                }
            }
            break;
        case 4:
            free_range(alloc, m, { pick_address(in, m), pick_size(in, m) });
            break;
        }
        check_free_ranges(alloc, m);
    }
    return 0;
}
