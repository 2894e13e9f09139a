// tools/stress/mutator/bad_arguments.cc — invalid arguments are refused with
// the documented errno and change nothing.
#include "mutator.h"

#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

namespace stress {

namespace {

void bad_arguments(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    Rng& rng = m.rng();
    const size_t page = w.page;
    const bool live = s.live.load(std::memory_order_relaxed);
    const uintptr_t a = live ? m.address(s, 0) : w.arena_lo;
    void* p = reinterpret_cast<void*>(a);
    auto bad_map = [&](const MapOptions& o, int expected, const char* what) {
        auto r = m.call("map_anonymous (bad arguments)", 0, [&] { return w.rt.map_anonymous(o); });
        m.expect(r, expected, what, si, uintptr_t(o.address), o.size);
        if (r) // it must not have succeeded; give it back so no check trips on it later
            (void)w.rt.unmap(*r, o.size);
    };
    // map_file with the slot's file, which must fail before it maps anything.
    auto bad_map_file = [&](int fd, const FileMapOptions& fo, int expected, const char* what) {
        auto r = m.call("map_file (bad arguments)", 0, [&] { return w.rt.map_file(fd, fo); });
        m.expect(r, expected, what, si, 0, fo.length);
        if (r)
            (void)w.rt.unmap(*r, (fo.length + page - 1) / page * page);
    };
    FileMapOptions fo;
    fo.length = page;
    fo.access = Access::ReadWrite;
    const int fd = w.files.fd(si);
    MapOptions o;
    o.size = page;
    switch (rng.below(20)) {
    case 0:
        o.size = 0;
        bad_map(o, EINVAL, "map_anonymous (size 0)");
        break;
    case 1:
        o.size = page + 1;
        bad_map(o, EINVAL, "map_anonymous (size not a page multiple)");
        break;
    case 2:
        o.alignment = 3 * page;
        bad_map(o, EINVAL, "map_anonymous (alignment not a power of two)");
        break;
    case 3:
        o.access = Access::ReadWriteExecute;
        bad_map(o, EACCES, "map_anonymous (W+X)");
        break;
    case 4:
        o.max_access = Access::Read;
        bad_map(o, EINVAL, "map_anonymous (access beyond max_access)");
        break;
    case 5:
        o.name = "a]b";
        bad_map(o, EINVAL, "map_anonymous (bad name)");
        break;
    case 6:
        if (rng.percent(50)) {
            o.flags = RegionFlags(1u << 20);
            bad_map(o, EINVAL, "map_anonymous (unknown flag)");
        } else {
            // Purgeable regions are private anonymous memory only (types.h).
            o.flags = RegionFlags::Purgeable | RegionFlags::Shared;
            bad_map(o, EINVAL, "map_anonymous (shared purgeable)");
        }
        break;
    case 7:
        o.size = w.arena_hi - w.arena_lo + page;
        bad_map(o, ENOMEM, "map_anonymous (larger than the arena)");
        break;
    case 8:
        o.address = reinterpret_cast<void*>(w.arena_hi);
        bad_map(o, EINVAL, "map_anonymous (fixed, outside the arena)");
        break;
    case 9:
        m.refuse(si, a + 8, page, EINVAL, "unmap (misaligned)", "unmap (misaligned)",
            [&] { return w.rt.unmap(reinterpret_cast<char*>(p) + 8, page); });
        break;
    case 10:
        m.refuse(si, w.arena_hi, page, EINVAL, "unmap (outside)", "unmap (outside the arena)",
            [&] { return w.rt.unmap(reinterpret_cast<void*>(w.arena_hi), page); });
        break;
    case 11:
        m.refuse(si, a, page, EINVAL, "protect (bad access)", "protect (unknown access bits)",
            [&] { return w.rt.protect(p, page, Access(8)); });
        break;
    case 12:
        m.refuse(si, a, 0, EINVAL, "discard (size 0)", "discard (size 0)", [&] { return w.rt.discard(p, 0); });
        break;
    case 13:
        fo.length = 0;
        bad_map_file(fd, fo, EINVAL, "map_file (length 0)");
        break;
    case 14:
        fo.offset = rng.percent(50) ? int64_t(page / 2) : -int64_t(page);
        bad_map_file(fd, fo, EINVAL, "map_file (offset negative or not page-aligned)");
        break;
    case 15:
        if (rng.percent(50)) {
            fo.readahead_min_pages = 8, fo.readahead_max_pages = 4;
            bad_map_file(fd, fo, EINVAL, "map_file (readahead min > max)");
        } else {
            fo.readahead_max_pages = 8192;
            bad_map_file(fd, fo, EINVAL, "map_file (readahead max > 4096)");
        }
        break;
    case 16:
        fo.sharing = Sharing(7);
        bad_map_file(fd, fo, EINVAL, "map_file (unknown sharing)");
        break;
    case 17:
        if (rng.percent(50)) {
            bad_map_file(w.files.directory(), fo, ENODEV, "map_file (a directory)");
        } else {
            const int wronly = w.files.reopen(si, O_WRONLY);
            if (wronly < 0) {
                failure("%s: cannot open slot %u's file write-only: %s", m.who(), si, errno_name(-wronly));
                break;
            }
            fo.sharing = Sharing::Private;
            fo.access = Access::Read;
            bad_map_file(wronly, fo, EACCES, "map_file (descriptor not open for reading)");
            close(wronly);
        }
        break;
    case 18: {
        // Flags are checked before the range.
        const SyncFlags flags = rng.percent(50) ? SyncFlags(8) : SyncFlags::Sync | SyncFlags::Async;
        m.refuse(si, a, page, EINVAL, "sync (bad flags)", "sync (unknown flags, or Sync with Async)",
            [&] { return w.rt.sync(p, page, flags); });
        break;
    }
    default:
        // sync only takes file regions; and a misaligned range anywhere.
        if (PageRange r; live && !is_file(m.kind(s)) && m.pick_any(s, 1, &r))
            m.refuse(si, m.address(s, r.a), page, EINVAL, "sync (anonymous)", "sync (over an anonymous region)",
                [&] { return w.rt.sync(m.pointer(s, r.a), page); });
        else
            m.refuse(si, a + 8, page, EINVAL, "sync (misaligned)", "sync (misaligned)",
                [&] { return w.rt.sync(reinterpret_cast<char*>(p) + 8, page); });
        break;
    }
}

const RegisterOperation registered { { "bad_arguments", { .empty = 4, .cold = 7, .cold_file = 6 }, bad_arguments } };

} // namespace

} // namespace stress
