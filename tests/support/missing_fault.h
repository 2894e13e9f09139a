// A missing fault for the object unit tests: `page` of a region of `pages`
// pages at `base`, its fault-around window between `around_min` and
// `around_max` pages, filled before the thread is woken (AfterWindow), so
// that one handle_fault() call shows the whole window.
#pragma once

#include "memory/fault_context.h"

#include <cstddef>
#include <cstdint>

namespace faultline::testing {

inline memory::FaultContext missing_fault(uintptr_t base, size_t pages, size_t page_size, size_t page, bool write,
    unsigned around_min, unsigned around_max)
{
    memory::FaultContext ctx;
    ctx.wake_order = WakeOrder::AfterWindow;
    ctx.kind = uffd::FaultKind::Missing;
    ctx.write = write;
    ctx.page = base + page * page_size;
    ctx.region_base = base;
    ctx.region_end = base + pages * page_size;
    ctx.page_size = page_size;
    ctx.around = { around_min, around_max };
    return ctx;
}

} // namespace faultline::testing
