#include "memory/cow_chain_plan.h"

#include <algorithm>

namespace faultline::memory {

std::vector<PageRun> clip_runs(const std::vector<PageRun>& runs, size_t first, size_t end)
{
    std::vector<PageRun> out;
    for (const PageRun& r : runs) {
        const size_t lo = std::max(r.first, first), hi = std::min(r.end, end);
        if (lo < hi)
            out.push_back({ lo, hi });
    }
    return out;
}

std::vector<PageRun> union_runs(const std::vector<PageRun>& a, const std::vector<PageRun>& b)
{
    std::vector<PageRun> all;
    all.reserve(a.size() + b.size());
    std::merge(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(all),
        [](const PageRun& x, const PageRun& y) { return x.first < y.first; });
    std::vector<PageRun> out;
    for (const PageRun& r : all) {
        if (!out.empty() && r.first <= out.back().end)
            out.back().end = std::max(out.back().end, r.end);
        else
            out.push_back(r);
    }
    return out;
}

bool runs_cover(const std::vector<PageRun>& outer, const std::vector<PageRun>& inner)
{
    // Both sorted; `outer` merged (no two runs touch), so each inner run
    // must lie within a single outer run.
    size_t o = 0;
    for (const PageRun& r : inner) {
        while (o < outer.size() && outer[o].end <= r.first)
            ++o;
        if (o == outer.size() || outer[o].first > r.first || outer[o].end < r.end)
            return false;
    }
    return true;
}

ChainPlan plan_chain(const std::vector<const std::vector<PageRun>*>& below, const std::vector<PageRun>& top,
    size_t window_first, size_t window_end, ChainLimits limits)
{
    ChainPlan plan;
    std::vector<PageRun> covered = union_runs(clip_runs(top, window_first, window_end), {});
    size_t runs = covered.size();
    // From the top down: a layer is needed where no layer above it (the new
    // one included) covers its pages.
    for (size_t i = below.size(); i-- > 0;) {
        std::vector<PageRun> mine = clip_runs(*below[i], window_first, window_end);
        if (mine.empty() || runs_cover(covered, mine))
            continue;
        plan.keep.push_back(i);
        runs += mine.size();
        covered = union_runs(covered, mine);
    }
    std::reverse(plan.keep.begin(), plan.keep.end());
    plan.depth = 1 + plan.keep.size() + 1;
    if (plan.depth > limits.max_depth || runs > limits.max_runs) {
        plan.keep.clear();
        plan.flatten = true;
        plan.depth = 1;
    }
    return plan;
}

} // namespace faultline::memory
