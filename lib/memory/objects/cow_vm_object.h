// memory/objects/cow_vm_object.h — anonymous memory that can be cloned in O(1).
//
// Two mappings can share a physical page only if it lives in a file: an
// anonymous page our fault path installed belongs to its mapping alone
// (docs/design.md, "Copy-on-write", has the measurements). So a clonable
// region keeps its pages in a memfd from the start. While it has never been
// cloned it is *live*: its one view maps the memfd MAP_SHARED and the fault
// service zero-fills it like any anonymous region. The first clone
// *freezes* it: from then on the memfd is never written again, and every
// view — the original, remapped in place, and each clone — maps it
// MAP_PRIVATE, so the kernel's own copy-on-write gives each view private
// copies of the pages it writes while reads share the frozen pages. Frozen
// views are not registered with the userfaultfd: the kernel serves them.
//
// A clone of a view that has written since its freeze is a *chain*: this
// kind of object too, born frozen, whose memfd is (a duplicate descriptor
// of) the base's, with layers over it (memory/cow_layer.h): the pages the
// view had written, copied once; everything else stays shared with every
// other view. Its views map the base over their window and each layer over
// its runs (map_layers()).
#pragma once

#include "memory/cow_layer.h"
#include "memory/objects/anonymous_vm_object.h"

#include <atomic>
#include <memory>
#include <vector>

namespace faultline::memory {

class CowVMObject final : public AnonymousVMObject {
public:
    static Result<boost::intrusive_ptr<CowVMObject>> try_create(size_t size, size_t page_size, const char* name);
    // A memfd for a layer of a chain (the caller owns it).
    static Result<int> create_layer_memfd(size_t size, const char* name)
    {
        return create_memfd(size, name && *name ? name : "faultline-layer");
    }
    // A frozen chain: `base_fd` (owned: a duplicate of the base object's
    // memfd) under `layers`, bottom first.
    static Result<boost::intrusive_ptr<CowVMObject>> try_create_chain(size_t size, size_t page_size, int base_fd,
        std::vector<std::shared_ptr<const CowLayer>> layers);

    const char* kind_name() const noexcept override { return frozen() ? "cow" : "clonable"; }
    uffd::Mode uffd_modes() const noexcept override { return frozen() ? uffd::Mode::None : uffd::Mode::Missing; }
    int backing_map_type() const noexcept override;
    // A fault that was queued before the freeze: the view is the kernel's
    // now; wake the thread and let it fault again there.
    Outcome handle_fault(const FaultContext&, PageSink&) noexcept override;
    // Live: a hole is punched (the one view is going). Frozen: the pages
    // may be shared by other views; the memfd goes with the last of them.
    void release_pages(size_t first, size_t count) noexcept override;

    bool frozen() const noexcept { return frozen_.load(std::memory_order_acquire); }
    // Called once its views are about to be remapped MAP_PRIVATE (under the
    // runtime's API lock).
    void freeze() noexcept { frozen_.store(true, std::memory_order_release); }
    // A view of it had a range discarded: fresh anonymous memory was
    // mapped over that range, which dropping written pages cannot undo.
    bool overlaid() const noexcept { return overlaid_.load(std::memory_order_relaxed); }
    void note_overlay() noexcept { overlaid_.store(true, std::memory_order_relaxed); }
    // Undoes freeze() when remapping the views failed (they are live again).
    void thaw() noexcept { frozen_.store(false, std::memory_order_release); }

    // The layers over the base, bottom first (none: a base object).
    const std::vector<std::shared_ptr<const CowLayer>>& layers() const noexcept { return layers_; }
    // Frozen objects a view of this one reads through: the base and its
    // layers (0 while live).
    size_t depth() const noexcept { return frozen() ? 1 + layers_.size() : 0; }
    // Maps each layer's runs within [offset, offset + size) over a view at
    // `base` that already maps the base memfd: 0 or -errno.
    int map_layers(uintptr_t base, size_t size, int prot, size_t offset) const noexcept override;

private:
    using AnonymousVMObject::AnonymousVMObject;
    std::vector<std::shared_ptr<const CowLayer>> layers_;
    std::atomic<bool> frozen_ { false };
    std::atomic<bool> overlaid_ { false };
};

} // namespace faultline::memory
