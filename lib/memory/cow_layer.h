// memory/cow_layer.h — one frozen layer of a copy-on-write chain.
//
// Codezero's pager keeps a chain of shadow objects per mapping; here a
// shadow is a *layer*: the pages one view had written since its freeze when
// it was cloned, copied into a sparse memfd at the offsets they have in the
// object (so a layer maps at the same offset as the base below it). A chain
// is the base object's memfd with layers over it, bottom first; a view maps
// the base over its whole window and each layer over its runs only
// (memory/objects/cow_vm_object.h). A layer is never written again once
// made, and is shared by every chain built on it: the last chain to go
// closes its memfd (the pages go with the last mapping).
#pragma once

#include <faultline/result.h>

#include <cstddef>
#include <memory>
#include <vector>

namespace faultline::memory {

// A run of pages, [first, end), in the object's page numbers.
struct PageRun {
    size_t first;
    size_t end;
    friend bool operator==(const PageRun&, const PageRun&) = default;
};

class CowLayer {
public:
    // Takes ownership of `fd`. `runs` sorted, disjoint and not adjacent.
    static Result<std::shared_ptr<const CowLayer>> create(int fd, std::vector<PageRun> runs);
    ~CowLayer();
    CowLayer(const CowLayer&) = delete;
    CowLayer& operator=(const CowLayer&) = delete;

    int fd() const noexcept { return fd_; }
    const std::vector<PageRun>& runs() const noexcept { return runs_; }
    size_t pages() const noexcept;

private:
    CowLayer(int fd, std::vector<PageRun> runs) noexcept
        : fd_(fd)
        , runs_(std::move(runs))
    {
    }
    int fd_;
    std::vector<PageRun> runs_;
};

} // namespace faultline::memory
