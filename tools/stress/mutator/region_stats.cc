// tools/stress/mutator/region_stats.cc — region_stats must describe a region
// that lies inside the slot and agrees with the model page by page.
//
// A read-only call: it picks a page like the changes do, but its check is
// the comparison with the model, so it runs outside the sequence lock. For
// copy-on-write slots it also checks the object kind and the chain depth.
#include "mutator.h"

#include <cstring>

namespace stress {

namespace {

void check_region_stats(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    PageRange r;
    if (!m.pick_any(s, 1, &r))
        return;
    const uintptr_t a = m.address(s, r.a) + 8 * m.rng().below(unsigned(w.words));
    auto res = m.call("region_stats", a, [&] { return w.rt.region_stats(reinterpret_cast<void*>(a)); });
    if (!m.expect(res, 0, "region_stats", si, a, w.page))
        return;
    const RegionStats& st = *res;
    // The kind of region: file regions are never committed and carry no
    // NoReserve flag; a shared one has the Shared flag.
    const Kind kind = m.kind(s);
    // (A slot whose file is mapped through a store holds a store region.)
    const char* want_kind = kind == Kind::SharedFile ? (FileSet::via_store(si) ? "store" : "file-shared")
        : kind == Kind::PrivateFile                  ? "file-private"
                                                     : nullptr;
    const bool kind_ok = want_kind ? std::strcmp(st.object_kind, want_kind) == 0
            && has(st.flags, RegionFlags::Shared) == (kind == Kind::SharedFile) && !has(st.flags, RegionFlags::NoReserve)
                                   : std::strncmp(st.object_kind, "file", 4) != 0 && std::strcmp(st.object_kind, "store") != 0;
    if (!kind_ok) {
        failure("%s: region_stats(%#lx) on slot %u: object kind '%s', flags %#x, but the slot holds %s", m.who(), (unsigned long)a,
            si, st.object_kind, unsigned(st.flags), want_kind ? want_kind : "anonymous memory");
        return;
    }
    // Copy-on-write (docs/cow.md): a Clonable region is "clonable" until its
    // first clone or snapshot freezes it, then a view ("cow"), as every
    // clone and snapshot is; only views have frozen objects under them, and
    // no more than kMaxChainDepth: the base and at most 7 layers, past which
    // a clone is flattened (docs/cow.md, "Chains").
    constexpr unsigned kMaxChainDepth = 8;
    const bool cow_kind = std::strcmp(st.object_kind, "cow") == 0 || std::strcmp(st.object_kind, "clonable") == 0;
    if (is_cow(kind)) {
        const char* want = s.frozen ? "cow" : "clonable";
        if (std::strcmp(st.object_kind, want) != 0 || !has(st.flags, RegionFlags::Clonable) || st.chain_depth > kMaxChainDepth
            || (st.chain_depth == 0) == s.frozen || st.cow_shared_pages + st.cow_private_pages > st.size / w.page) {
            failure("%s: region_stats(%#lx) on slot %u (%s of %u pages): object kind '%s' (want '%s'), flags %#x, chain depth %u "
                    "(at most %u, 0 only before the first clone), %zu shared + %zu private pages",
                m.who(), (unsigned long)a, si, kind == Kind::Snapshot ? "a snapshot" : "a clonable region or clone", m.npages(s),
                st.object_kind, want, unsigned(st.flags), st.chain_depth, kMaxChainDepth, st.cow_shared_pages, st.cow_private_pages);
            return;
        }
        unsigned depth = w.max_chain_depth.load();
        while (st.chain_depth > depth && !w.max_chain_depth.compare_exchange_weak(depth, st.chain_depth)) {
        }
    } else if (cow_kind || has(st.flags, RegionFlags::Clonable) || st.chain_depth || st.cow_shared_pages || st.cow_private_pages) {
        failure("%s: region_stats(%#lx) on slot %u: object kind '%s', flags %#x, chain depth %u, %zu/%zu cow pages, but the slot "
                "holds no copy-on-write region",
            m.who(), (unsigned long)a, si, st.object_kind, unsigned(st.flags), st.chain_depth, st.cow_shared_pages, st.cow_private_pages);
        return;
    }
    const uintptr_t lo = m.address(s, 0), hi = m.address(s, m.npages(s));
    if (st.base > a || a - st.base >= st.size || st.base % w.page || st.size % w.page || st.base < lo || st.base + st.size > hi) {
        failure("%s: region_stats(%#lx) on slot %u gave region %#lx+%zu pages, not within the slot's %#lx+%u pages", m.who(),
            (unsigned long)a, si, (unsigned long)st.base, st.size / w.page, (unsigned long)lo, m.npages(s));
        return;
    }
    for (uintptr_t q = st.base; q < st.base + st.size; q += w.page) {
        const unsigned p = unsigned((q - lo) / w.page);
        const PageView v = m.view(s, p);
        if (!v.mapped || v.access != st.access || v.immutable != has(st.flags, RegionFlags::Immutable)
            || st.name != kNames[s.name[p]] || st.max_access != s.max_access
            || (!is_file(kind) && has(st.flags, RegionFlags::NoReserve) == s.committed)) {
            failure("%s: region_stats(%#lx) on slot %u: region %#lx+%zu pages (%s, max %s, %s, name '%s') disagrees with the model at page %u (%s%s, max %s, %s, name '%s')",
                m.who(), (unsigned long)a, si, (unsigned long)st.base, st.size / w.page, access_name(st.access),
                access_name(st.max_access), has(st.flags, RegionFlags::Immutable) ? "immutable" : "mutable", st.name.c_str(), p,
                v.mapped ? "" : "unmapped ", access_name(v.access), access_name(s.max_access),
                v.immutable ? "immutable" : "mutable", kNames[s.name[p]]);
            return;
        }
    }
}

const RegisterOperation registered { { "region_stats", { .cold = 5, .cold_file = 6, .cow = 10, .snapshot = 10 }, check_region_stats } };

} // namespace

} // namespace stress
