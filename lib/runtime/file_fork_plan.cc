#include "runtime/file_fork_plan.h"

#include "os/virtual_memory.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <sys/mman.h>
#include <unistd.h>

namespace faultline {

namespace {

// The child of a multi-threaded process may not take the logging library's
// locks (another thread of the parent may have held them at the fork).
void say(const char* message) noexcept
{
    ssize_t ignored = write(STDERR_FILENO, message, strlen(message));
    (void)ignored;
}

} // namespace

void FileForkPlan::add(Entry entry, size_t page, const std::vector<Run>& keep)
{
    const uint64_t first = entry.offset / page, end = first + entry.size / page;
    entry.keep_first = keep_.size();
    entry.keep_count = 0;
    for (const Run& r : keep) {
        if (r.end <= first || r.first >= end)
            continue;
        keep_.push_back({ std::max(r.first, first), std::min(r.end, end) });
        ++entry.keep_count;
    }
    entries_.push_back(entry);
}

FileForkPlan::Run FileForkPlan::next_anonymous(const Entry& e, size_t page, const os::Pagemap& pagemap, size_t from) const noexcept
{
    const size_t pages = e.size / page;
    auto run = pagemap.next_anonymous_run(e.base + from * page, e.base + e.size, scan_);
    if (!run && scan_) // the scan failed: read the entries instead
        run = pagemap.next_anonymous_run(e.base + from * page, e.base + e.size, false);
    if (!run) // unreadable: the rest is kept as it is — a private copy must never be mapped over
        return { from, pages };
    return { (run->first - e.base) / page, (run->second - e.base) / page };
}

size_t FileForkPlan::apply_one(const Entry& e, size_t page, const os::Pagemap* pagemap) const noexcept
{
    if (e.kind == Kind::Unavailable)
        return os::replace_with_reservation(e.base, e.size) == 0 ? 0 : 1;
    const size_t pages = e.size / page;
    const int type = e.kind == Kind::Shared ? MAP_SHARED : MAP_PRIVATE;
    const uint64_t first_file_page = e.offset / page;
    size_t failed = 0;
    size_t k = e.keep_first;
    const size_t keep_end = e.keep_first + e.keep_count;
    // Walks the region in order: every page that is neither a private copy
    // nor kept is mapped from the file, in as few mmap(2) calls as the runs
    // allow.
    for (size_t pos = 0; pos < pages;) {
        Run anonymous { pages, pages };
        if (e.kind == Kind::Private && pagemap)
            anonymous = next_anonymous(e, page, *pagemap, pos);
        while (k < keep_end && keep_[k].end <= first_file_page + pos)
            ++k;
        Run kept { pages, pages };
        if (k < keep_end) {
            kept.first = std::max<uint64_t>(keep_[k].first, first_file_page + pos) - first_file_page;
            kept.end = std::min<uint64_t>(keep_[k].end - first_file_page, pages);
        }
        const size_t skip = size_t(std::min(anonymous.first, kept.first));
        if (skip > pos) {
            const int rc = os::map_fd_fixed(e.base + pos * page, (skip - pos) * page, e.prot, type, e.fd, e.offset + pos * page);
            failed += rc != 0;
        }
        if (skip >= pages)
            break;
        size_t next = skip;
        if (anonymous.first == skip)
            next = std::max<size_t>(next, anonymous.end);
        if (kept.first == skip)
            next = std::max<size_t>(next, kept.end);
        pos = std::max(next, skip + 1);
    }
    return failed;
}

size_t FileForkPlan::apply(size_t page) const noexcept
{
    std::optional<os::Pagemap> pagemap;
    bool opened = false;
    size_t failed = 0;
    for (const Entry& e : entries_) {
        if (e.kind == Kind::Private && !opened) {
            opened = true;
            if (auto m = os::Pagemap::open(false))
                pagemap.emplace(std::move(*m));
        }
        // Without the page tables, a private region's copies cannot be told
        // from its file pages: it keeps viewing the cache.
        if (e.kind == Kind::Private && !pagemap) {
            ++failed;
            continue;
        }
        failed += apply_one(e, page, pagemap ? &*pagemap : nullptr);
    }
    if (failed)
        say("faultline: fork: some file regions could not be remapped in the child and view the parent's cache\n");
    return failed;
}

} // namespace faultline
