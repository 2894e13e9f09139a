#include "runtime/swap_out.h"

#include "os/virtual_memory.h"
#include "support/log.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <shared_mutex>

namespace faultline {

using memory::PageState;
using memory::SwapBackedVMObject;
using SwapState = SwapBackedVMObject::SwapState;

std::vector<SwapOut::View> SwapOut::views_of(const SwapBackedVMObject& object) const
{
    std::vector<View> views;
    tree_.for_each([&](memory::Region& r) {
        if (&r.object() != &object)
            return;
        const size_t first = r.object_offset() / page_;
        views.push_back({ first, first + r.size() / page_, r.base() });
    });
    return views;
}

uintptr_t SwapOut::address_of(const std::vector<View>& views, size_t page, size_t page_size) noexcept
{
    for (const View& v : views)
        if (page >= v.first && page < v.end)
            return v.base + (page - v.first) * page_size;
    return 0;
}

template <typename Fn>
void SwapOut::for_each_run(const std::vector<uintptr_t>& sorted, Fn&& fn) const
{
    for (size_t i = 0; i < sorted.size();) {
        size_t n = 1;
        while (i + n < sorted.size() && sorted[i + n] == sorted[i] + n * page_)
            ++n;
        fn(sorted[i], n * page_);
        i += n;
    }
}

size_t SwapOut::evict(SwapBackedVMObject& object, size_t want)
{
    memory::EvictionList& list = object.eviction();
    const memory::PageStates& states = object.states();
    memory::SwapSpace& space = object.space();
    const bool clock = policy_ == EvictionPolicy::Clock;
    std::shared_lock tree(tree_.lock());
    const std::vector<View> views = views_of(object);
    if (views.empty())
        return 0;

    struct Victim {
        size_t page;
        uintptr_t address;
        SwapState was;
    };
    std::vector<Victim> victims;
    std::vector<uintptr_t> probes;
    // Each page is looked at most twice per call (a second chance, then its
    // turn), so a list of pinned or used pages ends the call.
    size_t looks = 2 * list.size() + 1;
    struct timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t now = uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
    // Full swap: only pages that need no new slot may go — until it is time
    // to try the target again.
    const bool full = space.full.load(std::memory_order_relaxed) && now < space.retry_at.load(std::memory_order_relaxed);
    auto note_full = [&] {
        space.retry_at.store(now + memory::SwapSpace::kFullRetryNs, std::memory_order_relaxed);
        space.full_events.fetch_add(1, std::memory_order_relaxed);
        return !space.full.exchange(true);
    };
    while (victims.size() < want && looks-- > 0) {
        size_t page;
        if (!list.rotate_front(page))
            break;
        const SwapState s = object.swap_state(page);
        if (states.get(page) != PageState::Present || s == SwapState::Swapped || s == SwapState::SwapIn) {
            list.remove(page); // gone by other means (discard, unmap)
            continue;
        }
        const uintptr_t address = address_of(views, page, page_);
        if (!address)
            continue;
        if (clock) {
            if (list.clear_referenced(page)) {
                (void)list.take_zapped(page); // probe it again next time round
                continue;
            }
            if (s == SwapState::None && !list.take_zapped(page)) {
                list.set_zapped(page);
                probes.push_back(address);
                continue;
            }
        }
        if (s == SwapState::None && full)
            continue;
        SwapState was;
        if (object.begin_evict(page, was))
            victims.push_back({ page, address, was });
    }
    if (!probes.empty()) {
        std::sort(probes.begin(), probes.end());
        for_each_run(probes, [&](uintptr_t address, size_t bytes) {
            long rc = uffd_.writeprotect(address, bytes, true, false);
            if (rc < 0 && rc != -ENOENT)
                log::warn("swap: write-protecting {:#x} failed: {}", address, strerror(int(-rc)));
        });
    }
    if (victims.empty())
        return 0;

    // Slots and protection for the pages that must be written. Protected
    // after the claim: a write from here on faults, and its pin cancels the
    // eviction; a write before it is in what we write.
    std::vector<memory::SwapTarget::Write> writes;
    std::vector<size_t> written; // victim index of each write
    std::vector<uintptr_t> protect;
    for (size_t k = 0; k < victims.size(); ++k) {
        Victim& v = victims[k];
        if (v.was != SwapState::None)
            continue;
        if (!object.assign_slot(v.page)) {
            object.abort_evict(v.page);
            v.page = SIZE_MAX;
            if (note_full())
                log::warn("swap is full ({} slots): anonymous pages stay resident, the memory budget is exceeded",
                    space.slots->capacity());
            continue;
        }
        protect.push_back(v.address);
        writes.push_back({ object.slot_of(v.page) - 1, reinterpret_cast<const void*>(v.address), 0 });
        written.push_back(k);
    }
    std::sort(protect.begin(), protect.end());
    for_each_run(protect, [&](uintptr_t address, size_t bytes) {
        long rc = uffd_.writeprotect(address, bytes, true, false);
        if (rc < 0 && rc != -ENOENT)
            log::warn("swap: write-protecting {:#x} failed: {}", address, strerror(int(-rc)));
    });
    if (!writes.empty())
        space.target->write(writes.data(), writes.size());
    for (size_t i = 0; i < writes.size(); ++i) {
        if (writes[i].result == 0) {
            // The target took a page: it has room (again).
            if (space.full.load(std::memory_order_relaxed))
                space.full.store(false, std::memory_order_relaxed);
            continue;
        }
        // The page stays resident and intact; its slot goes back.
        Victim& v = victims[written[i]];
        object.abort_evict(v.page);
        v.page = SIZE_MAX;
        object.counters().write_errors.fetch_add(1, std::memory_order_relaxed);
        if (writes[i].result == -ENOSPC) {
            if (note_full())
                log::warn("swap is full (no space on the swap target: the file's filesystem, or Redis's maxmemory): anonymous pages stay resident, the memory budget is exceeded; tried again every second");
        } else {
            log::warn("swap: writing a page failed: {}", strerror(-writes[i].result));
        }
    }

    std::vector<uintptr_t> drops;
    std::vector<Victim*> dropping;
    for (Victim& v : victims) {
        if (v.page == SIZE_MAX || !object.commit_evict(v.page))
            continue;
        drops.push_back(v.address);
        dropping.push_back(&v);
    }
    std::sort(drops.begin(), drops.end());
    for_each_run(drops, [&](uintptr_t address, size_t bytes) {
        // Dropping pages are the evictor's alone (faults on them retry), so
        // nothing written since the write-out is lost here.
        if (int rc = os::discard(address, bytes); rc < 0)
            log::warn("swap: dropping {:#x}+{:#x} failed: {}", address, bytes, strerror(-rc));
    });
    for (Victim* v : dropping) {
        object.finish_evict(v->page);
        if (v->was == SwapState::Cached)
            object.counters().clean_drops.fetch_add(1, std::memory_order_relaxed);
    }
    return dropping.size();
}

void SwapOut::swap_in_all(SwapBackedVMObject& object)
{
    std::shared_lock tree(tree_.lock());
    const memory::PageStates& states = object.states();
    for (const View& v : views_of(object))
        states.for_each_marked_span(v.first, v.end - v.first, [&](size_t first, size_t count) {
            for (size_t p = first; p < first + count; ++p)
                if (object.swap_state(p) == SwapState::Swapped || object.swap_state(p) == SwapState::SwapIn)
                    // A read is enough: the fault service swaps the page in.
                    (void)*reinterpret_cast<volatile const char*>(v.base + (p - v.first) * page_);
        });
}

} // namespace faultline
