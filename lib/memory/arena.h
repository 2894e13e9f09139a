// memory/arena.h — the one reservation every region is carved from.
//
// Registering each region with userfaultfd separately would create a VMA per
// region and runs into the kernel's limits (umap hit ENOMEM past ~900
// registrations). Instead the runtime reserves one large PROT_NONE,
// MAP_NORESERVE range, registers it once, and regions only change its
// protection. A range given back is replaced by a fresh reservation and
// registered again, which drops its pages and anything mapped over it.
#pragma once

#include "memory/range_allocator.h"
#include "uffd/userfaultfd.h"

#include <faultline/result.h>

#include <vector>

namespace faultline::memory {

class Arena {
public:
    // The modes every part of the arena is registered with; a region whose
    // object wants others registers its own range again.
    static constexpr uffd::Mode kModes = uffd::Mode::Missing;

    static Result<Arena> try_create(uffd::Userfaultfd& uffd, size_t size, size_t alignment);
    Arena(Arena&&) noexcept;
    Arena& operator=(Arena&&) = delete;
    ~Arena();

    uintptr_t base() const { return base_; }
    size_t size() const { return size_; }
    uintptr_t end() const { return base_ + size_; }
    bool contains(uintptr_t a, size_t len) const { return a >= base_ && a <= end() && len <= end() - a; }
    // The range ioctls the kernel offers on the arena (from UFFDIO_REGISTER).
    uint64_t range_ioctls() const { return ioctls_; }

    // Drops everything in [range) and makes it a PROT_NONE part of the arena
    // registered with `uffd` again: a new mapping, which also removes
    // anything mapped over the range (a memfd, a SIGBUS page), poison
    // markers, names and other registration modes.
    Result<void> reset(Range range, uffd::Userfaultfd& uffd);
    // The same for a range that is already PROT_NONE arena memory with the
    // arena's registration and nothing mapped over it: drops its pages and
    // its name in place. Needs no new mapping, so it cannot fail for lack of
    // VMAs where reset() could (vm.max_map_count).
    Result<void> recycle(Range range, bool named);
    // Unmaps the arena now (except sealed ranges); the destructor then does
    // nothing. base() and size() stay valid.
    void release() noexcept;
    // Remembers a sealed range: the kernel will refuse to unmap it, so the
    // arena leaves it in place when it is destroyed.
    void note_sealed(Range range) { sealed_.push_back(range); }
    const std::vector<Range>& sealed() const { return sealed_; }

private:
    Arena(uintptr_t base, size_t size)
        : base_(base)
        , size_(size)
    {
    }
    uintptr_t base_ = 0;
    size_t size_ = 0;
    uint64_t ioctls_ = 0;
    bool released_ = false;
    std::vector<Range> sealed_;
};

} // namespace faultline::memory
