#include "runtime/region_statistics.h"

#include "memory/objects/cow_vm_object.h"
#include "memory/objects/inode_vm_object.h"
#include "memory/objects/purgeable_vm_object.h"
#include "memory/objects/shared_inode_vm_object.h"
#include "os/pagemap.h"

#include <algorithm>
#include <vector>

namespace faultline {

using os::Pagemap;

RegionSnapshot RegionStatistics::snapshot(const memory::Region& r)
{
    RegionSnapshot snap;
    RegionStats& s = snap.stats;
    s.base = r.base();
    s.size = r.size();
    s.name = r.name();
    s.access = r.access();
    s.max_access = r.max_access();
    s.flags = r.flags();
    s.object_kind = r.object().kind_name();
    if (auto* cow = dynamic_cast<const memory::CowVMObject*>(&r.object()); cow && cow->frozen()) {
        snap.cow_view = true;
        s.chain_depth = unsigned(cow->depth());
    }
    s.zero_faults = r.counters().faults(memory::FillKind::Zero);
    s.write_protect_faults = r.counters().faults(memory::FillKind::WriteProtect);
    s.inode_faults = r.counters().faults(memory::FillKind::Backing);
    if (auto* inode = dynamic_cast<const memory::InodeVMObject*>(&r.object())) {
        // The file's cache is shared by every region of the file: these are
        // the file's figures.
        const auto& c = inode->cache().counters();
        s.file_bytes_read = c.bytes_read.load(std::memory_order_relaxed);
        s.file_bytes_written = c.bytes_written.load(std::memory_order_relaxed);
        s.file_read_errors = c.read_errors.load(std::memory_order_relaxed);
        s.readahead_pages = c.readahead_pages.load(std::memory_order_relaxed);
        s.readahead_used = c.readahead_used.load(std::memory_order_relaxed);
        s.cached_pages = inode->cache().cached_pages();
        s.evictions_clean = c.evictions_clean.load(std::memory_order_relaxed);
        s.evictions_dirty = c.evictions_dirty.load(std::memory_order_relaxed);
        s.referenced_refaults = c.referenced_refaults.load(std::memory_order_relaxed);
        if (const memory::PageBudget* own = inode->cache().own_budget())
            s.budget = uint64_t(own->budget()) * inode->cache().page_size();
        snap.file = true;
    }
    if (auto* purgeable = dynamic_cast<const memory::PurgeableVMObject*>(&r.object())) {
        // Under the API lock, which every change to the spans holds too.
        const size_t first = r.object_offset() / r.object().page_size();
        const size_t end = first + r.size() / r.object().page_size();
        purgeable->spans().for_each_overlapping(first, end, [&](const memory::VolatileSpans::Span& span) {
            s.volatile_bytes += (span.end - span.first) * r.object().page_size();
            for (size_t i = span.first; i < span.end; ++i)
                s.purged_pages += purgeable->volatility().get(i) == memory::Volatility::Purged;
        });
        s.purges = purgeable->counters().purges.load(std::memory_order_relaxed);
        s.purged_bytes = purgeable->counters().purged_bytes.load(std::memory_order_relaxed);
        s.purged_refaults = purgeable->counters().purged_refaults.load(std::memory_order_relaxed);
    }
    s.pages_installed = r.counters().pages_installed();
    s.has_been_writable = r.has_been_writable();
    s.has_been_executable = r.has_been_executable();
    snap.object = r.object_ptr();
    snap.object_offset = r.object_offset();
    return snap;
}

size_t RegionStatistics::measure(RegionSnapshot& r, std::string* page_map) const
{
    RegionStats& s = r.stats;
    const size_t pages = s.size / page_;
    const size_t per_char = pages <= kMapChars ? 1 : (pages + kMapChars - 1) / kMapChars;
    if (page_map)
        page_map->assign((pages + per_char - 1) / per_char, '.');
    auto pagemap = Pagemap::open();
    if (!pagemap)
        return per_char;

    auto rank = [](char c) { return c == 'D' ? 3 : c == 'c' ? 2 : c == 'z' ? 1 : 0; };
    // A file region's dirt is its file's: pages written and not yet synced.
    // (A private file region's own copies count below, as anonymous pages.)
    auto* shared_file = dynamic_cast<const memory::SharedInodeVMObject*>(r.object.get());
    if (shared_file) {
        const auto& cache = shared_file->cache();
        cache.states().for_each_marked_span(r.object_offset / page_, pages, [&](size_t at, size_t n) {
            for (size_t i = at; i < at + n; ++i)
                if (cache.dirty(i)
                    || (!shared_file->tracks_writes() && shared_file->ever_writable() && cache.states().get(i) == memory::PageState::Present))
                    ++s.dirty_pages;
        });
        if (shared_file->async_write_tracking()) {
            // Pages the kernel marked written since the last sync collected
            // them (without re-protecting: looking changes nothing).
            page_region runs[256];
            uintptr_t at = s.base;
            const uintptr_t end = s.base + s.size;
            while (at < end) {
                uintptr_t walk_end = end;
                auto n = pagemap->scan_written(at, end, false, runs, 256, &walk_end);
                if (!n)
                    break;
                for (size_t i = 0; i < *n; ++i)
                    for (uintptr_t a = runs[i].start; a < runs[i].end; a += page_) {
                        const size_t page = r.object_offset / page_ + (a - s.base) / page_;
                        if (!cache.dirty(page) && cache.states().get(page) == memory::PageState::Present)
                            ++s.dirty_pages;
                    }
                if (walk_end <= at)
                    break;
                at = walk_end;
            }
        }
        s.amount_dirty = s.dirty_pages * page_;
    }
    // A purgeable region's resident pages, volatile or not.
    auto* purgeable = dynamic_cast<const memory::PurgeableVMObject*>(r.object.get());
    // The one loop every statistic goes through: one classified page.
    auto count = [&](size_t index, Pagemap::Kind kind, uint64_t entry) {
        if (purgeable && (kind == Pagemap::Kind::Private || kind == Pagemap::Kind::Shared)) {
            const bool is_volatile = purgeable->volatility().get(r.object_offset / page_ + index) != memory::Volatility::NonVolatile;
            (is_volatile ? s.volatile_resident : s.nonvolatile_resident) += page_;
        }
        if (r.cow_view && (kind == Pagemap::Kind::Private || kind == Pagemap::Kind::Shared)) {
            // A page of the frozen memfd is shared with every view of it
            // (and mapped by others, so never "exclusive"); anything else is
            // the view's own copy.
            s.amount_resident += page_;
            if (Pagemap::file_or_shared(entry)) {
                ++s.cow_shared_pages;
                kind = Pagemap::Kind::Shared;
            } else {
                ++s.cow_private_pages;
                s.amount_dirty += page_;
                kind = Pagemap::Kind::Private;
            }
            if (page_map) {
                char& c = (*page_map)[index / per_char];
                if (rank(char(kind)) > rank(c))
                    c = char(kind);
            }
            return;
        }
        switch (kind) {
        case Pagemap::Kind::Private:
            s.amount_resident += page_;
            // A page of the file's memfd is the file's (clean unless dirty,
            // counted above); anything else is the region's own.
            if (!r.file || !Pagemap::file_or_shared(entry))
                s.amount_dirty += page_;
            break;
        case Pagemap::Kind::Shared:
            s.amount_resident += page_;
            s.amount_dirty += page_;
            ++s.cow_pages;
            break;
        case Pagemap::Kind::Zero:
            s.amount_zero_mapped += page_;
            break;
        case Pagemap::Kind::None:
            return;
        }
        if (page_map) {
            char& c = (*page_map)[index / per_char];
            if (rank(char(kind)) > rank(c))
                c = char(kind);
        }
    };

    const size_t first_object_page = r.object_offset / page_;
    const memory::PageStates& states = r.object->states();
    constexpr size_t kChunk = 4096;
    std::vector<uint64_t> entries(kChunk);
    // Reads and classifies pages [first, first+n) of the region.
    auto read_span = [&](size_t first, size_t n, bool known_not_zero) {
        for (size_t at = first; at < first + n; at += kChunk) {
            const size_t len = std::min(kChunk, first + n - at);
            if (!pagemap->read(s.base + at * page_, len, entries.data()))
                return;
            for (size_t i = 0; i < len; ++i) {
                const bool hint = !known_not_zero && states.get(first_object_page + at + i) == memory::PageState::ZeroMapped;
                count(at + i, pagemap->classify(entries[i], hint), entries[i]);
            }
        }
    };

    if (use_scan_) {
        page_region runs[256];
        uintptr_t at = s.base;
        const uintptr_t end = s.base + s.size;
        while (at < end) {
            uintptr_t walk_end = end;
            auto n = pagemap->scan(at, end, runs, 256, &walk_end);
            if (!n)
                break;
            for (size_t i = 0; i < *n; ++i) {
                const size_t first = (runs[i].start - s.base) / page_;
                const size_t len = (runs[i].end - runs[i].start) / page_;
                if (runs[i].categories & PAGE_IS_PFNZERO) {
                    for (size_t p = first; p < first + len; ++p)
                        count(p, Pagemap::Kind::Zero, 0);
                } else if (runs[i].categories & PAGE_IS_PRESENT) {
                    // Present, not the zero page: private or shared with a
                    // fork child, which only the entry's exclusive bit tells.
                    read_span(first, len, true);
                }
            }
            if (walk_end <= at)
                break;
            at = walk_end;
        }
        return per_char;
    }
    // Without PAGEMAP_SCAN: only the blocks the object ever populated —
    // except for a copy-on-write view, which the kernel fills: all of it.
    if (r.cow_view) {
        read_span(0, pages, true);
        return per_char;
    }
    states.for_each_marked_span(first_object_page, pages, [&](size_t object_page, size_t n) {
        read_span(object_page - first_object_page, n, false);
    });
    return per_char;
}

} // namespace faultline
