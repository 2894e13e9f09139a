// tools/stress/mutator/map_file.cc — maps part of the slot's file into the
// empty slot: shared or private, at a random offset and length within the
// file, read-only or read-write, through a read-write or read-only
// descriptor or a path, with random readahead limits and sometimes O_DIRECT.
//
// Before the model describes the region, the mutator reads the mapped part
// of the file (pread) into the slot's shadow (model.h, "File regions") and
// checks it: every word must be the file's initial value or a value this
// slot's accessors wrote in a *shared* incarnation (private writes never
// reach the file), and where an accessor's last write to a shared file page
// certainly landed, exactly that value — which is what makes an unmap's
// write-back (or a lost one) visible.
#include "mutator.h"

#include <algorithm>
#include <cerrno>
#include <mutex>

#include <fcntl.h>
#include <unistd.h>

namespace stress {

namespace {

// Reads file pages [first, first+n) into the shadow, checking each word.
void read_file(Mutator& m, unsigned si, unsigned first, unsigned n)
{
    World& w = m.world();
    std::vector<uint64_t>& buf = m.page_buffer();
    for (unsigned f = first; f < first + n; ++f) {
        if (!w.files.read_page(si, f, buf.data()))
            continue;
        // Accessors cannot be in the slot: it was empty (its last unmap
        // waited for them) and its sequence is odd; their records of it are
        // at rest.
        const size_t record = record_index(si, Kind::SharedFile, 0, f);
        const uint64_t zero_id = w.file_zero_id(si, f);
        unsigned bad = 0;
        for (size_t i = 0; i < w.words; ++i) {
            const uint64_t v = buf[i];
            const unsigned owner = unsigned(i % w.opt.threads);
            uint64_t base = 0;
            bool ok;
            const char* want;
            if (known_exactly(w, owner, record, zero_id, &base)) {
                ok = v == (base | (i & kWordMask));
                want = "exactly the last write to it, which certainly landed";
            } else {
                const uint32_t inc_field = uint32_t(v >> 33) & 0x7fff;
                ok = v == initial_file_value(si, f, i)
                    || (plausible(v, si, inc_field, f, i, owner) && w.files.was_shared(si, inc_field));
                want = "its initial value or a value written to it in a shared incarnation";
            }
            if (!ok && bad++ == 0)
                failure("%s: slot %u's file, page %u word %zu, read %s before mapping it again; expected %s%s%s", m.who(), si, f, i,
                    describe_value(v).c_str(), want, base ? ": " : "", base ? describe_value(base | (i & kWordMask)).c_str() : "");
        }
        uint64_t* shadow = w.shadow_page(si, f);
        for (size_t i = 0; i < w.words; ++i)
            shadow_store(shadow + i, buf[i]);
        w.mutator_bytes_verified.fetch_add(w.page, std::memory_order_relaxed);
    }
}

void map_file(Mutator& m, unsigned si, Slot& s)
{
    World& w = m.world();
    Rng& rng = m.rng();
    const unsigned n = std::min(pick_map_size(rng, si < kHotSlots), kMaxPages);
    const unsigned first = rng.below(kMaxPages - n + 1);
    // Some slots map their file through a user store (files.h): always
    // shared, by the store, never O_DIRECT.
    const bool store = FileSet::via_store(si);
    const bool shared = store || rng.percent(60);
    const unsigned pick = rng.below(100);
    const Access access = pick < 60 ? Access::ReadWrite : pick < 92 ? Access::Read : Access::ReadExecute;

    FileMapOptions o;
    o.length = size_t(n) * w.page - (rng.percent(10) ? 1 + rng.below(unsigned(w.page - 1)) : 0); // rounded up to pages
    o.offset = int64_t(first) * int64_t(w.page);
    o.access = access;
    o.sharing = shared ? Sharing::Shared : Sharing::Private;
    const unsigned name = rng.below(kNameCount);
    o.name = kNames[name];
    if (rng.percent(50)) {
        o.readahead_min_pages = 1u << rng.below(4);
        o.readahead_max_pages = o.readahead_min_pages << rng.below(6);
    }
    o.direct_io = !store && rng.percent(10);

    // The descriptor: the slot's read-write one, a read-only one (a shared
    // region may then never be writable: max access r-x, and asking for
    // write access is refused), or the path, which the runtime opens
    // read-write only for a writable shared map.
    const unsigned how = store ? 0 : rng.below(100);
    const bool by_path = how >= 85;
    const bool read_only_fd = how >= 70 && how < 85;
    const bool fd_writable = by_path ? shared && writable(access) : !read_only_fd;
    const Access max_access = shared && !fd_writable ? Access::ReadExecute : Access::ReadWriteExecute;
    int expected = shared && writable(access) && !fd_writable ? EACCES : 0;
    if (!expected && o.direct_io && !w.files.direct_io_supported())
        expected = EINVAL;
    int fd = w.files.fd(si);
    if (read_only_fd && (fd = w.files.reopen(si, O_RDONLY)) < 0) {
        failure("%s: cannot open slot %u's file read-only: %s", m.who(), si, errno_name(-fd));
        return;
    }
    const std::string path = w.files.path(si);
    auto do_map = [&] {
        if (store)
            return w.rt.map_store(w.files.store(si), { .length = o.length, .offset = o.offset, .address = o.address,
                .access = o.access, .name = o.name, .readahead_min_pages = o.readahead_min_pages,
                .readahead_max_pages = o.readahead_max_pages, .threads = 1 + si % 3 });
        return by_path ? w.rt.map_file(path.c_str(), o) : w.rt.map_file(fd, o);
    };
    struct Closer { // the read-only descriptor is ours; the runtime keeps its own
        int fd;
        bool own;
        ~Closer()
        {
            if (own)
                close(fd);
        }
    } closer { fd, read_only_fd };

    std::lock_guard reuse(w.reuse_lock);
    // Sometimes ask for the slot's previous address back; map.cc checks the
    // refusal when it is taken, so only a free one is asked for here.
    if (s.last_base && rng.percent(20)) {
        bool free = true;
        for (unsigned p = 0; p < n && free; ++p)
            free = m.page_free(s.last_base + size_t(p) * w.page);
        if (free)
            o.address = reinterpret_cast<void*>(s.last_base);
    }
    if (expected) {
        auto r = m.call("map_file (refused)", uintptr_t(o.address), do_map);
        m.expect(r, expected, expected == EACCES ? "map_file (shared, writable, read-only descriptor)" : "map_file (O_DIRECT)", si,
            uintptr_t(o.address), o.length);
        if (r)
            (void)w.rt.unmap(*r, size_t(n) * w.page);
        return;
    }

    begin_change(s);
    auto r = m.call("map_file", uintptr_t(o.address), do_map);
    if (!r) {
        failure("%s: map_file(%s, pages %u+%u, %s, %s, readahead %u-%u%s%s) for slot %u failed: %s: %s", m.who(),
            store ? "store" : shared ? "shared" : "private", first, n, access_name(access), by_path ? "by path" : read_only_fd ? "read-only fd" : "read-write fd",
            o.readahead_min_pages, o.readahead_max_pages, o.direct_io ? ", O_DIRECT" : "", o.address ? ", fixed" : "", si,
            errno_name(r.error().code()), r.error().message());
        end_change(s);
        return;
    }
    const uintptr_t a = uintptr_t(*r);
    if (o.address && a != uintptr_t(o.address))
        failure("%s: map_file at fixed address %#lx returned %#lx", m.who(), (unsigned long)uintptr_t(o.address), (unsigned long)a);
    m.claim(si, a, n, 0, "map_file");
    read_file(m, si, first, n);
    const uint32_t inc = m.publish(s, si,
        { .base = a, .npages = n, .kind = shared ? Kind::SharedFile : Kind::PrivateFile, .first = first, .access = access,
            .max_access = max_access, .name = name, .committed = false });
    if (shared)
        w.files.note_shared(si, inc);
    w.file_maps.fetch_add(1, std::memory_order_relaxed);
    end_change(s);
}

// A third of all maps (map.cc has the rest), so that file regions are about
// a third of the slots.
const RegisterOperation registered { { "map_file", { .empty = 30 }, map_file } };

} // namespace

} // namespace stress
