// Fuzz target `umap`: the umap-compatible entry points (include/umap/umap.h,
// lib/umap/, docs/umap.md) — umap, Umap::umap_ex with a Umap::Store, uunmap,
// umap_flush, umap_prefetch, umap_fetch_and_pin and the configuration
// getters — with arbitrary addresses, lengths, prot, flags, descriptors and
// offsets, checked against a byte model:
//   - a call succeeds exactly when docs/umap.md says it must, and a failing
//     one returns UMAP_FAILED or -1 with an errno docs/umap.md lists for a
//     condition that holds (the void calls set errno and change nothing);
//   - regions read back what was written, regions of one file see each
//     other's writes, and under a small buffer (UMAP_BUFSIZE) pages evicted
//     and read again keep their bytes;
//   - after umap_flush the file (read with pread) and every store hold what
//     was written; after uunmap a store holds what its region had.
//
// umap reads UMAP_* once per process, so they are set in
// LLVMFuzzerInitialize, before the first call; every input starts with no
// region (the previous one unmapped all of them).
#include "fuzz_input.h"

#include <umap/umap.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using fuzz::Expect;
using fuzz::Input;

namespace {

constexpr size_t kUmapPage = 16384;    // UMAP_PAGESIZE: four system pages
constexpr size_t kFileUmapPages = 16;  // the file: 256 KiB
constexpr size_t kMaxRegions = 8;      // up to 8 umap pages each: more than the buffer holds
constexpr int kBadFd = 1 << 20;

// A Umap::Store in memory. read_from_store runs on the region's store
// threads and write_to_store on the flushing thread: a lock keeps them apart.
class MemoryStore : public Umap::Store {
public:
    explicit MemoryStore(size_t size)
        : bytes_(size)
    {
        for (size_t i = 0; i < size; i += 64)
            bytes_[i] = uint8_t(i / 64 * 13 + 5);
    }
    ssize_t read_from_store(char* buf, size_t nb, off_t off) override
    {
        std::lock_guard g(lock_);
        FUZZ_CHECK(off >= 0 && size_t(off) + nb <= bytes_.size(), "store read %zu at %ld of %zu", nb, long(off),
                   bytes_.size());
        memcpy(buf, bytes_.data() + off, nb);
        return ssize_t(nb);
    }
    ssize_t write_to_store(char* buf, size_t nb, off_t off) override
    {
        std::lock_guard g(lock_);
        FUZZ_CHECK(off >= 0 && size_t(off) + nb <= bytes_.size(), "store write %zu at %ld of %zu", nb, long(off),
                   bytes_.size());
        memcpy(bytes_.data() + off, buf, nb);
        return ssize_t(nb);
    }
    std::vector<uint8_t> bytes()
    {
        std::lock_guard g(lock_);
        return bytes_;
    }

private:
    std::mutex lock_;
    std::vector<uint8_t> bytes_;
};

struct Region {
    uint8_t* address;
    size_t length;
    int prot;
    size_t offset;
    // A store region's bytes (its own cache); null for a file region, whose
    // bytes are the file model's at `offset`.
    std::unique_ptr<MemoryStore> store;
    std::vector<uint8_t> store_model;
};

struct State {
    uintptr_t arena = 0; // where the first region of an empty arena goes
    int fd_rw = -1, fd_ro = -1;
    std::vector<uint8_t> file; // the file's bytes as every region sees them
    std::vector<Region> regions;
};
State s;

// The bytes a region's page shows, or null past the end of the file.
uint8_t* model_bytes(Region& r, size_t at)
{
    if (r.store)
        return r.store_model.data() + at;
    size_t file_at = r.offset + at;
    return file_at < s.file.size() ? s.file.data() + file_at : nullptr;
}

bool readable(const Region& r) { return r.prot & (PROT_READ | PROT_WRITE); } // PROT_WRITE reads too (x86)

void check_region_page(Region& r, size_t page)
{
    const uint8_t* want = model_bytes(r, page * kUmapPage);
    if (!want || !readable(r))
        return;
    const uint8_t* mem = r.address + page * kUmapPage;
    if (memcmp(mem, want, kUmapPage) == 0)
        return;
    size_t at = 0;
    while (mem[at] == want[at])
        ++at;
    FUZZ_CHECK(false, "region %p (offset %zu, %s) byte %zu is %#x, model %#x", static_cast<void*>(r.address), r.offset,
               r.store ? "store" : "file", page * kUmapPage + at, mem[at], want[at]);
}

void check_file()
{
    std::vector<uint8_t> on_disk(s.file.size());
    FUZZ_CHECK(pread(s.fd_rw, on_disk.data(), on_disk.size(), 0) == ssize_t(on_disk.size()), "pread");
    // memcmp first: a byte loop in instrumented code costs more than the
    // whole input otherwise.
    if (memcmp(on_disk.data(), s.file.data(), on_disk.size()) == 0)
        return;
    for (size_t i = 0; i < on_disk.size(); ++i)
        FUZZ_CHECK(on_disk[i] == s.file[i], "file byte %zu is %#x after a flush, model %#x", i, on_disk[i], s.file[i]);
}

void check_store(Region& r)
{
    std::vector<uint8_t> stored = r.store->bytes();
    if (memcmp(stored.data() + r.offset, r.store_model.data(), r.length) == 0)
        return;
    for (size_t i = 0; i < r.length; ++i)
        FUZZ_CHECK(stored[r.offset + i] == r.store_model[i], "store byte %zu is %#x after write-back, model %#x",
                   r.offset + i, stored[r.offset + i], r.store_model[i]);
}

Region* region_at(uintptr_t a, size_t* index = nullptr)
{
    for (size_t i = 0; i < s.regions.size(); ++i) {
        uintptr_t base = uintptr_t(s.regions[i].address);
        if (a >= base && a - base < s.regions[i].length) {
            if (index)
                *index = i;
            return &s.regions[i];
        }
    }
    return nullptr;
}

// ---- decoding ------------------------------------------------------------

uintptr_t pick_address(Input& in)
{
    uint8_t mode = in.u8() % 8;
    if (mode < 5)
        return s.arena + size_t(in.u8() % 80) * kUmapPage;
    if (mode == 5)
        return s.arena + in.u16() * 512; // some aligned, most not
    if (mode == 6)
        return in.u64();
    return 0;
}

void op_map(Input& in)
{
    if (s.regions.size() >= kMaxRegions)
        return;
    uint8_t fm = in.u8();
    int flags = fm < 160 ? UMAP_PRIVATE : fm < 230 ? UMAP_PRIVATE | UMAP_FIXED : int(in.u32());
    uintptr_t a = flags & UMAP_FIXED || in.u8() < 32 ? pick_address(in) : 0;
    uint8_t lm = in.u8();
    size_t length = lm < 220 ? (1 + lm % 8) * kUmapPage : lm < 240 ? in.u16() : in.u64();
    uint8_t pm = in.u8();
    static const int prots[] = { PROT_READ | PROT_WRITE, PROT_READ, PROT_WRITE, PROT_NONE };
    int prot = pm < 240 ? prots[pm % 4] : int(pm);
    uint8_t om = in.u8();
    off_t offset = om < 230 ? off_t(om % (kFileUmapPages + 3)) * off_t(kUmapPage)
        : om < 240 ? -off_t(kUmapPage) : off_t(in.u16());
    const bool with_store = in.u8() < 64;
    uint8_t dm = in.u8() % 8;
    int fd = dm < 6 ? s.fd_rw : dm == 6 ? s.fd_ro : kBadFd;

    Expect e;
    if (!(flags & UMAP_PRIVATE) || (flags & ~(UMAP_PRIVATE | UMAP_FIXED)) || (prot & ~(PROT_READ | PROT_WRITE))
        || length == 0 || length % kUmapPage || a % kUmapPage || ((flags & UMAP_FIXED) && !a) || offset < 0
        || offset % off_t(kUmapPage))
        e.add(EINVAL);
    if (!with_store && fd == kBadFd)
        e.add(EBADF);
    if (!with_store && fd == s.fd_ro && (prot & PROT_WRITE))
        e.add(EACCES);
    if (flags & UMAP_FIXED) {
        // Fixed: inside the arena (1 TiB from s.arena) and over no region.
        if (a < s.arena || a - s.arena >= (size_t(1) << 40) || length > (size_t(1) << 40) - (a - s.arena))
            e.add(EINVAL);
        for (const Region& r : s.regions)
            if (a < uintptr_t(r.address) + r.length && uintptr_t(r.address) < a + length)
                e.add(EEXIST);
    }
    if (length > (size_t(1) << 40))
        e.add(ENOMEM);
    if (offset >= 0 && (length > (size_t(16) << 40) || size_t(offset) + length > (size_t(16) << 40)))
        e.add(EOVERFLOW);
    if (prot & PROT_WRITE) // the kernel may lack write-protect on shared memory (docs/umap.md)
        e.may_fail_with = { EOPNOTSUPP };

    // A store holds its bytes in memory: no huge one (a huge file region
    // costs nothing, its pages past the end of the file are never touched).
    if (with_store && !e.fails() && length > 64 * kUmapPage)
        return;
    std::unique_ptr<MemoryStore> store;
    if (with_store && !e.fails())
        store = std::make_unique<MemoryStore>(size_t(offset) + length);
    errno = 0;
    void* got = with_store ? Umap::umap_ex(reinterpret_cast<void*>(a), length, prot, flags, fd, offset,
                                           store ? store.get() : (store = std::make_unique<MemoryStore>(kUmapPage)).get())
                           : umap(reinterpret_cast<void*>(a), length, prot, flags, fd, offset);
    int rc = got == UMAP_FAILED ? -errno : 0;
    FUZZ_CHECK(e.allows(rc), "%s(%#lx, %zu, prot %#x, flags %#x, fd %d, offset %ld): %d, the model expects %d",
               with_store ? "umap_ex" : "umap", a, length, prot, flags, fd, long(offset), rc,
               e.fails() ? -e.errors[0] : 0);
    if (rc != 0)
        return;
    uintptr_t at = uintptr_t(got);
    FUZZ_CHECK(at % kUmapPage == 0 && (!(flags & UMAP_FIXED) || at == a) && !region_at(at) && !region_at(at + length - 1),
               "umap gave %#lx+%zu (asked %#lx), over a region or misaligned", at, length, a);
    Region r { static_cast<uint8_t*>(got), length, prot, size_t(offset), std::move(store), {} };
    if (r.store) {
        std::vector<uint8_t> all = r.store->bytes();
        r.store_model.assign(all.begin() + long(offset), all.end());
    }
    s.regions.push_back(std::move(r));
}

void op_write(Input& in)
{
    if (s.regions.empty())
        return;
    Region& r = s.regions[in.u8() % s.regions.size()];
    size_t at = size_t(in.u32()) % r.length;
    size_t len = std::min<size_t>(r.length - at, 1 + in.u16() % (2 * kUmapPage));
    uint8_t value = in.u8();
    if (!(r.prot & PROT_WRITE))
        return;
    // Not past the end of the file: SIGBUS there, by design.
    if (!r.store && r.offset + at + len > s.file.size())
        return;
    memset(r.address + at, value, len);
    memset(model_bytes(r, at), value, len);
}

void unmap_region(size_t i)
{
    Region& r = s.regions[i];
    errno = 0;
    int rc = uunmap(r.address, r.length);
    FUZZ_CHECK(rc == 0, "uunmap of region %p: %d (errno %d)", static_cast<void*>(r.address), rc, errno);
    if (r.store)
        check_store(r); // written back before the region went
    s.regions.erase(s.regions.begin() + long(i));
}

void op_unmap(Input& in)
{
    uint8_t m = in.u8();
    if (m < 200 && !s.regions.empty()) {
        unmap_region(m % s.regions.size());
        return;
    }
    // Anything that is not the start of a region: EINVAL, nothing changes.
    uintptr_t a = pick_address(in);
    size_t i;
    Region* r = region_at(a, &i);
    if (r && uintptr_t(r->address) == a) {
        unmap_region(i);
        return;
    }
    errno = 0;
    int rc = uunmap(reinterpret_cast<void*>(a), in.u16());
    FUZZ_CHECK(rc == -1 && errno == EINVAL, "uunmap(%#lx) of no region start: %d (errno %d)", a, rc, errno);
}

void op_prefetch(Input& in)
{
    umap_prefetch_item items[4];
    int n = int(in.u8() % 6) - 1; // -1 .. 4
    bool null_array = in.u8() < 16;
    bool refused = n < 0 || (null_array && n > 0);
    for (int k = 0; k < std::max(n, 0); ++k) {
        uintptr_t a = pick_address(in);
        if (in.flag() && !s.regions.empty()) {
            Region& r = s.regions[in.u8() % s.regions.size()];
            a = uintptr_t(r.address) + in.u32() % r.length;
        }
        items[k].page_base_addr = reinterpret_cast<void*>(a);
        Region* r = region_at(a);
        refused |= !r || !readable(*r); // "without PROT_READ": PROT_NONE
        // A umap page past the end of the file raises SIGBUS when read in,
        // as a touch there does.
        if (r && !r->store && r->offset + (a - uintptr_t(r->address)) / kUmapPage * kUmapPage >= s.file.size())
            return;
    }
    errno = 0;
    umap_prefetch(n, null_array ? nullptr : items);
    FUZZ_CHECK(refused ? errno == EINVAL : errno == 0, "umap_prefetch(%d): errno %d, the model expects %d", n, errno,
               refused ? EINVAL : 0);
}

void op_fetch(Input& in)
{
    uintptr_t a = pick_address(in);
    size_t size = in.u8() < 200 ? in.u16() * 8 : in.u64();
    if (in.flag() && !s.regions.empty()) {
        Region& r = s.regions[in.u8() % s.regions.size()];
        a = uintptr_t(r.address) + in.u32() % r.length;
    }
    Region* r = region_at(a);
    bool inside = r && size <= uintptr_t(r->address) + r->length - a;
    // Reading in a page past the end of the file would raise SIGBUS, as a
    // touch there does.
    if (inside && size && !r->store && r->offset + (a + size - uintptr_t(r->address)) > s.file.size())
        return;
    // An empty range is fetched at once, wherever it is; a region without
    // access (PROT_NONE) cannot be read in.
    bool refused = size && (!inside || !readable(*r));
    errno = 0;
    umap_fetch_and_pin(reinterpret_cast<char*>(a), size);
    FUZZ_CHECK(refused ? errno == EINVAL : errno == 0, "umap_fetch_and_pin(%#lx, %zu): errno %d, inside one region %d",
               a, size, errno, inside);
}

void op_flush()
{
    errno = 0;
    int rc = umap_flush();
    FUZZ_CHECK(rc == 0, "umap_flush: %d (errno %d)", rc, errno);
    check_file();
    for (Region& r : s.regions)
        if (r.store && (r.prot & PROT_WRITE))
            check_store(r);
}

void check_config()
{
    FUZZ_CHECK(umapcfg_get_umap_page_size() == kUmapPage, "umap page %lu", (unsigned long)umapcfg_get_umap_page_size());
    FUZZ_CHECK(umapcfg_get_max_pages_in_buffer() == 8, "buffer %lu", (unsigned long)umapcfg_get_max_pages_in_buffer());
    FUZZ_CHECK(umapcfg_get_system_page_size() == sysconf(_SC_PAGESIZE), "system page");
    FUZZ_CHECK(umap_has_write_support() == 1, "write support");
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    // Before any umap call: read once per process. A buffer of 8 umap pages
    // (128 KiB) is far less than the regions an input maps, so pages are
    // evicted (written back if dirty) and read again all the time.
    setenv("UMAP_PAGESIZE", std::to_string(kUmapPage).c_str(), 1);
    setenv("UMAP_BUFSIZE", "8", 1);
    setenv("UMAP_PAGE_FILLERS", "2", 1);

    const char* tmp = getenv("TMPDIR");
    std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/faultline-fuzz-umap-XXXXXX";
    s.fd_rw = mkstemp(path.data());
    FUZZ_CHECK(s.fd_rw >= 0, "mkstemp %s: %s", path.c_str(), strerror(errno));
    s.fd_ro = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    unlink(path.c_str());
    s.file.resize(kFileUmapPages * kUmapPage);
    for (size_t i = 0; i < s.file.size(); ++i)
        s.file[i] = uint8_t(i * 7 + i / 4096);
    FUZZ_CHECK(pwrite(s.fd_rw, s.file.data(), s.file.size(), 0) == ssize_t(s.file.size()), "pwrite");

    // The first region of the empty arena goes to its start: from there the
    // target knows where fixed addresses are inside the arena.
    void* first = umap(nullptr, kUmapPage, PROT_READ, UMAP_PRIVATE, s.fd_rw, 0);
    if (first == UMAP_FAILED) {
        std::fprintf(stderr, "umap fuzz target: umap: %s\n", strerror(errno));
        std::exit(1);
    }
    s.arena = uintptr_t(first);
    FUZZ_CHECK(uunmap(first, kUmapPage) == 0, "uunmap: %s", strerror(errno));
    check_config();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    Input in(data, size);
    for (int ops = 0; !in.done() && ops < 48; ++ops) {
        switch (in.u8() % 10) {
        case 0:
        case 1:
            op_map(in);
            break;
        case 2:
        case 3:
        case 4:
            op_write(in);
            break;
        case 5:
            op_unmap(in);
            break;
        case 6:
            op_prefetch(in);
            break;
        case 7:
            op_fetch(in);
            break;
        case 8:
            op_flush();
            break;
        case 9:
            if (!s.regions.empty()) {
                Region& r = s.regions[in.u8() % s.regions.size()];
                check_region_page(r, in.u8() % (r.length / kUmapPage));
            }
            break;
        }
    }
    for (Region& r : s.regions)
        for (size_t p = 0; p < r.length / kUmapPage; ++p)
            check_region_page(r, p);
    while (!s.regions.empty())
        unmap_region(s.regions.size() - 1);
    check_file(); // uunmap wrote every region back
    return 0;
}
