// A minimal anonymous VMObject that tracks which pages were written, through
// write-protect faults: pages are installed write-protected, and the first
// write raises a write-protect fault that marks the page dirty and lifts the
// protection. collect() re-protects the dirty pages and returns them — the
// shape file regions use for write-back.
//
// Where write-protect faults are unavailable (kernel, or FAULTLINE_DISABLE=wp)
// it falls back to what a file region must do then: every resident page
// counts as written.
#pragma once

#include "memory/vm_object.h"
#include "uffd/userfaultfd.h"

#include <atomic>
#include <memory>
#include <vector>

namespace faultline::testing {

class DirtyTrackingObject final : public memory::VMObject {
public:
    static boost::intrusive_ptr<DirtyTrackingObject> create(size_t pages, bool write_protect, size_t page_size = 4096)
    {
        return new DirtyTrackingObject(pages, write_protect, page_size);
    }

    const char* kind_name() const noexcept override { return "dirty-tracking"; }
    uffd::Mode uffd_modes() const noexcept override
    {
        return wp_ ? uffd::Mode::Missing | uffd::Mode::WriteProtect : uffd::Mode::Missing;
    }

    memory::Outcome handle_fault(const memory::FaultContext& ctx, memory::PageSink& sink) noexcept override
    {
        const size_t page = ctx.object_page();
        if (ctx.kind == uffd::FaultKind::WriteProtect) {
            // The first write since the page was (re-)protected.
            dirty_[page].store(1);
            uffd::FillResult r = sink.write_protect(ctx.page, ctx.page_size, false);
            if (!r.ok())
                return memory::Outcome::from_failure(r);
            return memory::Outcome::installed(memory::FillKind::WriteProtect, 0);
        }
        if (ctx.kind != uffd::FaultKind::Missing)
            return VMObject::handle_fault(ctx, sink);
        // A write to a missing page is a write: install it writable and
        // dirty at once (one fault instead of two). A read installs a
        // protected page, so the first write later is seen.
        uffd::ZeroFill how = uffd::ZeroFill::Private;
        if (!ctx.write)
            how = wp_ ? uffd::ZeroFill::PrivateWriteProtected : uffd::ZeroFill::SharedZeroPage;
        uffd::FillResult r = sink.zero(ctx.page, ctx.page_size, how);
        if (!r.ok())
            return memory::Outcome::from_failure(r);
        if (ctx.write)
            dirty_[page].store(1);
        states_.populate(page, 1, ctx.write ? memory::PageState::Present : memory::PageState::ZeroMapped);
        return memory::Outcome::installed(memory::FillKind::Zero, r.pages);
    }

    // Dirty pages since the last collect, re-protecting them first (so a
    // write racing this call dirties its page again). Without write-protect
    // faults: every resident page.
    std::vector<size_t> collect(uffd::Userfaultfd& uffd, uintptr_t region_base)
    {
        std::vector<size_t> out;
        for (size_t i = 0; i < page_count(); ++i) {
            if (!wp_) {
                if (states_.populated(i))
                    out.push_back(i);
                continue;
            }
            if (dirty_[i].load() == 0)
                continue;
            // Clear, then protect: a write after the protection faults and
            // dirties the page again; one before it is in this round.
            dirty_[i].store(0);
            (void)uffd.writeprotect(region_base + i * page_size(), page_size(), true, false);
            out.push_back(i);
        }
        return out;
    }

private:
    DirtyTrackingObject(size_t pages, bool write_protect, size_t page_size)
        : VMObject(pages * page_size, page_size, std::move(*memory::PageStates::create(pages)))
        , wp_(write_protect)
        , dirty_(new std::atomic<uint8_t>[pages]())
    {
    }
    bool wp_;
    std::unique_ptr<std::atomic<uint8_t>[]> dirty_;
};

} // namespace faultline::testing
