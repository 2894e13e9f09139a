// memory/cow_chain_plan.h — which layers a clone's chain keeps, and when a
// chain is flattened instead. Pure: no kernel, testable on its own.
//
// A clone of a view that has written since its freeze gets a chain: the
// view's chain (its base and layers) with a new top layer holding the pages
// the view wrote (memory/cow_layer.h). Codezero's pager collapses a shadow
// that the shadows in front of it cover entirely; here a layer every page
// of which (within the clone's window) is covered by the layers above it is
// left out of the new chain, and so is a layer with no page in the window —
// no view of the new chain can see it. A chain whose depth or number of
// runs (each a VMA in every view) would pass the limits is flattened: the
// clone gets one new base holding a copy of what the view shows, depth 1.
#pragma once

#include "memory/cow_layer.h"

#include <cstddef>
#include <vector>

namespace faultline::memory {

struct ChainLimits {
    // Base + layers, the new top included.
    size_t max_depth = 8;
    // Runs of all layers together within the window: each is a mapping.
    size_t max_runs = 64;
};

struct ChainPlan {
    // Indices into `below` (bottom first) that the new chain keeps under
    // the new top layer.
    std::vector<size_t> keep;
    // The chain would pass a limit: copy into one new base instead.
    bool flatten = false;
    // Depth of the new chain (base + kept layers + top); 1 when flattened.
    size_t depth = 1;
};

// `below`: the runs of the view's layers, bottom first; `top`: the new
// layer's runs; [window_first, window_end): the clone's window, in pages.
ChainPlan plan_chain(const std::vector<const std::vector<PageRun>*>& below, const std::vector<PageRun>& top,
    size_t window_first, size_t window_end, ChainLimits limits);

// Helpers, exposed for tests: `runs` clipped to [first, end); the union of
// two sorted run lists (adjacent runs merged); whether `inner` ⊆ `outer`.
std::vector<PageRun> clip_runs(const std::vector<PageRun>& runs, size_t first, size_t end);
std::vector<PageRun> union_runs(const std::vector<PageRun>& a, const std::vector<PageRun>& b);
bool runs_cover(const std::vector<PageRun>& outer, const std::vector<PageRun>& inner);

} // namespace faultline::memory
