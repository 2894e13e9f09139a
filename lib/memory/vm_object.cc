#include "memory/vm_object.h"

#include <sys/mman.h>

namespace faultline::memory {

VMObject::VMObject(size_t size, size_t page_size, PageStates states) noexcept
    : states_(std::move(states))
    , size_(size)
    , page_size_(page_size)
{
}

VMObject::~VMObject() = default;

int VMObject::backing_map_type() const noexcept { return MAP_SHARED; }

Outcome VMObject::handle_fault(const FaultContext& ctx, PageSink& sink) noexcept
{
    switch (ctx.kind) {
    case uffd::FaultKind::WriteProtect: {
        uffd::FillResult r = sink.write_protect(ctx.page, ctx.page_size, false);
        if (!r.ok())
            return Outcome::from_failure(r);
        return Outcome::installed(FillKind::WriteProtect, 0);
    }
    case uffd::FaultKind::Minor: {
        uffd::FillResult r = sink.map_cached(ctx.page, ctx.page_size, false);
        if (!r.ok())
            return Outcome::from_failure(r);
        states_.populate(ctx.object_page(), 1, PageState::Present);
        return Outcome::installed(FillKind::Backing, r.pages);
    }
    case uffd::FaultKind::Missing:
        break;
    }
    // An object that registers for missing faults must resolve them.
    return Outcome::sigbus();
}

Outcome VMObject::resume_fault(const FaultContext&, PageSink&, int64_t) noexcept
{
    return Outcome::sigbus();
}

} // namespace faultline::memory
