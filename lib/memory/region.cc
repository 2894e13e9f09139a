#include "memory/region.h"

#include <new>

namespace faultline::memory {

namespace {
std::atomic<uint64_t> next_serial { 1 };
}

Region::Region(Params&& p)
    : range_(p.range)
    , serial_(p.serial ? p.serial : next_serial.fetch_add(1, std::memory_order_relaxed))
    , object_(std::move(p.object))
    , object_offset_(p.object_offset)
    , name_(std::move(p.name))
    , access_(p.access)
    , max_access_(p.max_access)
    , flags_(p.flags)
    , guard_below_(p.guard_below)
    , committed_(p.committed)
    , readahead_(p.readahead)
{
    has_been_writable_ = has(p.access, Access::Write);
    has_been_executable_ = has(p.access, Access::Execute);
}

Result<std::unique_ptr<Region>> Region::try_create(Params params)
{
    if (!params.object)
        return fail(EINVAL, "region needs an object");
    if (params.object_offset > params.object->size() || params.range.size > params.object->size() - params.object_offset)
        return fail(EINVAL, "region extends past the end of its object");
    std::unique_ptr<Region> region(new (std::nothrow) Region(std::move(params)));
    if (!region)
        return fail(ENOMEM, "out of memory for region");
    return region;
}

Result<std::unique_ptr<Region>> Region::try_create_view_of(boost::intrusive_ptr<VMObject> object, size_t object_offset) const
{
    Params p;
    p.range = range_;
    p.serial = serial_;
    p.object = std::move(object);
    p.object_offset = object_offset;
    p.name = name_;
    p.access = access();
    p.max_access = max_access_;
    p.flags = flags_;
    p.guard_below = guard_below_;
    p.committed = committed_;
    p.readahead = readahead_;
    auto view = try_create(std::move(p));
    if (!view)
        return view;
    (*view)->has_been_writable_ = has_been_writable_;
    (*view)->has_been_executable_ = has_been_executable_;
    return view;
}

Result<std::unique_ptr<Region>> Region::try_create_piece(uintptr_t base, size_t size, std::optional<size_t> guard_below) const
{
    if (base < range_.base || base >= range_.end() || size == 0 || size > range_.end() - base)
        return fail(EINVAL, "piece is not inside the region");
    Params p;
    p.range = { base, size };
    p.object = object_;
    p.object_offset = object_offset_ + (base - range_.base);
    p.name = name_;
    p.access = access();
    p.max_access = max_access_;
    p.flags = flags_;
    p.guard_below = guard_below ? *guard_below : base == range_.base ? guard_below_ : 0;
    p.committed = committed_;
    p.readahead = readahead_;
    auto piece = try_create(std::move(p));
    if (!piece)
        return piece;
    (*piece)->has_been_writable_ = has_been_writable_;
    (*piece)->has_been_executable_ = has_been_executable_;
    (*piece)->sigbus_delivered_.store(sigbus_delivered(), std::memory_order_relaxed);
    return piece;
}

Result<void> Region::check_protect(Access access, bool allow_write_execute) const
{
    if (is_immutable())
        return failf(EPERM, "region '%s' is immutable", name_.c_str());
    if (!is_subset(access, max_access_))
        return fail(EACCES, "access exceeds the region's maximum access");
    if (!allow_write_execute) {
        // W^X over time, not just at one instant: a page that was ever
        // writable must not become executable, and the other way round,
        // or an attacker writes code first and runs it later.
        if (has(access, Access::Write) && has(access, Access::Execute))
            return fail(EACCES, "writable and executable at once (W+X) is refused");
        if (has(access, Access::Execute) && has_been_writable_)
            return fail(EACCES, "region has been writable; making it executable is refused");
        if (has(access, Access::Write) && has_been_executable_)
            return fail(EACCES, "region has been executable; making it writable is refused");
    }
    return {};
}

void Region::set_access(Access access) noexcept
{
    access_.store(access, std::memory_order_relaxed);
    has_been_writable_ |= has(access, Access::Write);
    has_been_executable_ |= has(access, Access::Execute);
}

Result<void> Region::validate_name(std::string_view name)
{
    // The kernel's ANON_VMA_NAME_MAX_LEN is 80 including the terminator.
    if (name.size() > 79)
        return fail(EINVAL, "name longer than 79 bytes");
    for (unsigned char c : name) {
        if (c < 0x20 || c > 0x7e || c == '[' || c == ']' || c == '\\' || c == '$' || c == '`')
            return fail(EINVAL, "name has a character /proc/self/maps cannot show");
    }
    return {};
}

FaultContext Region::fault_context(uintptr_t page, uffd::FaultKind kind, bool write, size_t page_size) const noexcept
{
    FaultContext ctx;
    ctx.kind = kind;
    ctx.write = write;
    ctx.page = page;
    ctx.region_base = range_.base;
    ctx.region_end = range_.end();
    ctx.object_offset = object_offset_;
    ctx.page_size = page_size;
    return ctx;
}

namespace {
void count(FaultCounters& counters, const Outcome& outcome) noexcept
{
    // A zero-fill fault whose page was already there (EEXIST: a thread that
    // faulted again after a spurious wake, e.g. a signal, once its first
    // fault had been served) filled nothing: it is not counted as one. Other
    // kinds may resolve a fault without installing a page themselves: a
    // write-protect fault lifts a protection, and in copy mode a file fault
    // puts the page in the memfd for the kernel to map.
    if (outcome.resolution == Resolution::Installed && (outcome.pages > 0 || outcome.kind != FillKind::Zero))
        counters.count(outcome.kind, outcome.pages);
    else
        counters.add_pages(outcome.pages);
}
}

Outcome Region::handle_fault(const FaultContext& ctx, PageSink& sink) noexcept
{
    Outcome outcome = object_->handle_fault(ctx, sink);
    count(counters_, outcome);
    return outcome;
}

Outcome Region::resume_fault(const FaultContext& ctx, PageSink& sink, int64_t result) noexcept
{
    Outcome outcome = object_->resume_fault(ctx, sink, result);
    count(counters_, outcome);
    return outcome;
}

Outcome Region::fault_around(const FaultContext& ctx, PageSink& sink) noexcept
{
    Outcome outcome = object_->fault_around(ctx, sink);
    counters_.add_pages(outcome.pages);
    return outcome;
}

void Region::end_fault() noexcept
{
    // seq_cst pairs with wait_for_faults_to_end(): either the waiter sees
    // zero, or we see `retiring_` and wake it.
    if (in_flight_.fetch_sub(1) == 1 && retiring_.load())
        in_flight_.notify_all();
}

void Region::wait_for_faults_to_end() noexcept
{
    retiring_.store(true);
    for (uint32_t n = in_flight_.load(); n != 0; n = in_flight_.load())
        in_flight_.wait(n);
}

void Region::share_counters(const Region& from, Region* const* pieces, size_t count) noexcept
{
    if (count == 0)
        return;
    const PageStates& states = from.object().states();
    const size_t page = from.object().page_size();
    uint64_t populated[8] = {};
    uint64_t total = 0;
    for (size_t i = 0; i < count && i < 8; ++i) {
        populated[i] = states.count_populated(pieces[i]->object_offset() / page, pieces[i]->size() / page);
        total += populated[i];
    }
    // No populated page (everything was discarded): by size instead.
    if (total == 0) {
        for (size_t i = 0; i < count && i < 8; ++i) {
            populated[i] = pieces[i]->size() / page;
            total += populated[i];
        }
    }
    // Every piece but the last gets its share rounded down; the last gets
    // the rest, so the counts add up to the original exactly.
    FaultCounters given;
    for (size_t i = 0; i + 1 < count && i < 8; ++i) {
        pieces[i]->counters_.add_share(from.counters_, populated[i], total);
        given.add_share(from.counters_, populated[i], total);
    }
    pieces[count - 1]->counters_.add_difference(from.counters_, given);
}

} // namespace faultline::memory
