#include "memory/cow_layer.h"

#include <new>
#include <unistd.h>

namespace faultline::memory {

Result<std::shared_ptr<const CowLayer>> CowLayer::create(int fd, std::vector<PageRun> runs)
{
    for (size_t i = 0; i < runs.size(); ++i)
        if (runs[i].first >= runs[i].end || (i > 0 && runs[i].first <= runs[i - 1].end)) {
            close(fd);
            return fail(EINVAL, "a layer's runs must be sorted, disjoint and not adjacent");
        }
    auto* layer = new (std::nothrow) CowLayer(fd, std::move(runs));
    if (!layer) {
        close(fd);
        return fail(ENOMEM, "out of memory for a copy-on-write layer");
    }
    return std::shared_ptr<const CowLayer>(layer);
}

CowLayer::~CowLayer()
{
    close(fd_);
}

size_t CowLayer::pages() const noexcept
{
    size_t n = 0;
    for (const PageRun& r : runs_)
        n += r.end - r.first;
    return n;
}

} // namespace faultline::memory
