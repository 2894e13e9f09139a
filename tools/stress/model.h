// tools/stress/model.h — the model every observation is checked against.
//
// The model
// ---------
// Regions live in a fixed table of slots. A slot holds at most one mapping
// at a time (pieces of which may since have been unmapped) and publishes its
// state through a sequence lock: a mutator makes the sequence odd before it
// changes anything and even again once the model describes the new state. An
// accessor reads the sequence, then the model, then the memory, and then the
// sequence again. Only when the sequence did not change is the observation
// checked, because only then did the model and the memory describe the same
// moment; otherwise it is dropped.
//
// Every 8-byte word of a page is either zero (never written since the page
// was mapped or last discarded) or a value that encodes the slot, the
// mapping's incarnation, the page index, the word index and the accessor that
// owns the word: accessor t owns the words w with w % threads == t, so every
// word has exactly one writer. Each accessor also remembers the last value it
// wrote to each page and whether that write certainly landed after the page
// was last zeroed; for such words it expects exactly that value. Together
// this catches lost writes, pages that went back to zero or to an older
// value, pages shown at the wrong offset or in the wrong region, and bytes
// that survived from an earlier mapping of the same addresses.
//
// Address reuse: the runtime hands unmapped addresses to later maps (its
// allocator is best-fit, so it does so often). An accessor whose view of a
// slot went stale during an unmap could otherwise write into the region
// placed there next, and the model would blame the runtime for that. So maps
// and unmaps are serialised by one mutex, and an unmap keeps it until every
// accessor that may have seen the old state has finished its visit (an
// epoch-based grace period). The same mutex guards the tool's record of which
// arena pages belong to which slot, which is also used to check that the
// runtime never hands out a page twice.
//
// File regions
// ------------
// A slot may hold a file region instead (map_file; its file is the slot's
// own, files.h). Then "untouched" means the file's contents as the mutator
// read them (pread) when it mapped the region: kept per slot and file page in
// a shadow copy that changes only while the slot is empty, under the
// sequence lock. Values written carry the file page (not the slot page) in
// their page field, so a page shown at the wrong file offset is caught. Zero
// is never right for a file page.
//
// A shared file region's writes reach the file, so its pages keep their
// zero_id across incarnations (file_zero_id: one per slot and file page for
// the phase), and each accessor remembers its last write to a shared file
// page apart from its other records (record_index): a write that certainly
// landed in one incarnation must be read back exactly in the next one, and
// must be in the file when the next map reads it or a checked sync has
// written it. A private file region's pages get fresh zero_ids, like
// anonymous ones, and its writes must never reach the file.
//
// Copy-on-write
// -------------
// A slot may hold a Clonable region or a clone of one (Kind::Cow), or a
// snapshot (Kind::Snapshot, read-only). Their "untouched" words are not
// zeros but what the region held when it came to be: kept per slot and page
// in a second shadow (cow_shadow), filled with zeros by map_clonable and
// with the words the mutator read from the new region by clone and snapshot
// (after checking them against the source: mutator/cow_view.h says how
// writes racing the clone are judged), and replaced by the snapshot's words
// on rollback. It changes only while the slot's sequence is odd. Values
// written carry the slot that wrote them, so a write to a clone seen in its
// source (or the other way round) is neither untouched nor plausible there:
// the two sides' divergence is checked by every read of either.
#pragma once

#include "files.h"
#include "options.h"
#include "signals.h"
#include "util.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <unistd.h>

namespace stress {

struct Activity;

constexpr unsigned kMaxPages = 64;       // pages in the largest region
constexpr unsigned kHotSlots = 4;        // slots that a quarter of all visits go to...
constexpr unsigned kHotPages = 2;        // ...touching only their first pages
constexpr uint64_t kIdle = UINT64_MAX;   // an accessor's announcement between visits
constexpr uint64_t kWordMask = 0x1ff;

// ---------------------------------------------------------------------------
// Page contents

// bit 63: set (so a written word is never zero); 48-62: the writer's counter;
// 33-47: incarnation; 23-32: slot; 15-22: owner (accessor); 9-14: page;
// 0-8: word. Fields are kept modulo their width, which is enough: what the
// check must tell apart is this page's writes from anybody else's.
inline uint64_t value_base(unsigned slot, uint32_t incarnation, unsigned page, unsigned owner, uint32_t counter)
{
    return (uint64_t(1) << 63) | (uint64_t(counter & 0x7fff) << 48) | (uint64_t(incarnation & 0x7fff) << 33)
        | (uint64_t(slot & 0x3ff) << 23) | (uint64_t(owner & 0xff) << 15) | (uint64_t(page & 0x3f) << 9);
}

inline bool plausible(uint64_t v, unsigned slot, uint32_t incarnation, unsigned page, size_t word, unsigned owner)
{
    const uint64_t without_counter = ~(uint64_t(0x7fff) << 48);
    return (v & without_counter) == (value_base(slot, incarnation, page, owner, 0) | (word & kWordMask));
}

std::string describe_value(uint64_t v);

// What a slot holds (published with the rest of its state).
enum class Kind : uint8_t { Anonymous, SharedFile, PrivateFile, Cow, Snapshot };

inline bool is_file(Kind k) { return k == Kind::SharedFile || k == Kind::PrivateFile; }
// A Clonable region, a clone, or a snapshot: untouched words in cow_shadow.
inline bool is_cow(Kind k) { return k == Kind::Cow || k == Kind::Snapshot; }

// The page field of the values written to slot page p: the page itself, or
// for a file region the file page (`first` is the file page of slot page 0;
// first + p < kMaxPages, the file's length).
inline unsigned value_page(Kind k, unsigned first, unsigned p) { return is_file(k) ? first + p : p; }

// Where an accessor remembers its last write to slot page p (AccessorState::
// records): shared file pages by file page, in a half of their own, so that
// what the file holds is remembered across incarnations whatever the slot
// maps in between.
inline size_t record_index(unsigned slot, Kind k, unsigned first, unsigned p)
{
    return size_t(slot) * 2 * kMaxPages + (k == Kind::SharedFile ? kMaxPages + first + p : p);
}

// ---------------------------------------------------------------------------
// The slot table

// What the model says of one page of a slot, packed into one atomic word.
// zero_id changes whenever the page is (re)zeroed, by a map or a discard; it
// comes from a global counter, so it never repeats.
struct PageView {
    bool mapped = false;
    Access access = Access::None;
    bool immutable = false;
    uint64_t zero_id = 0;
};

inline uint64_t pack(const PageView& v)
{
    return uint64_t(v.mapped) | uint64_t(uint8_t(v.access)) << 1 | uint64_t(v.immutable) << 4 | v.zero_id << 8;
}

inline PageView unpack(uint64_t w) { return { bool(w & 1), Access((w >> 1) & 7), bool((w >> 4) & 1), w >> 8 }; }

struct Slot {
    // Published to accessors under the sequence lock.
    alignas(64) std::atomic<uint64_t> seq { 0 };
    std::atomic<uintptr_t> base { 0 };
    std::atomic<uint32_t> npages { 0 };
    std::atomic<uint32_t> incarnation { 0 };
    std::atomic<Kind> kind { Kind::Anonymous };
    std::atomic<uint32_t> first { 0 }; // file regions: the file page of slot page 0
    std::atomic<bool> live { false };  // some page is mapped
    std::atomic<uint64_t> pages[kMaxPages] {};

    // The rest belongs to the mutator holding `busy` (and to the main thread
    // between phases, after it joined the mutators).
    alignas(64) std::atomic<bool> busy { false };
    bool pinned = false;    // holds immutable pages: can never be mapped afresh
    bool committed = true;  // the mapping counts against the commit limit
    bool guard = false;     // a stack guard page below `base` is still reserved
    bool stack = false;     // the mapping is a stack (pieces keep a guard page below them)
    bool purgeable = false; // a purgeable anonymous region (mutator/volatility.cc)
    Access max_access = Access::None;
    uintptr_t last_base = 0;
    uint8_t been_writable[kMaxPages] = {};
    uint8_t been_executable[kMaxPages] = {};
    uint8_t name[kMaxPages] = {};
    // Copy-on-write (mutator/cow_view.h). region_id names the mapping the
    // runtime knows as one region: new with every map, kept by a rollback,
    // so a snapshot belongs to (snapshot_of, snapshot_of_id).
    uint64_t region_id = 0;
    bool frozen = false;                // cloned or snapshotted, or a clone: the runtime's object kind is "cow"
    unsigned clone_depth = 0;           // clones between this region and a mapped one (the model's, for the report)
    unsigned snapshot_of = 0;           // Kind::Snapshot: the slot it was taken of...
    uint64_t snapshot_of_id = 0;        // ...and that slot's region then
    std::vector<unsigned> snapshots;    // slots that held snapshots of this region when they were taken (may be stale)
};

// The sequence lock, writer side: odd while the slot changes. (The reader
// side is Accessor::visit.)
inline void begin_change(Slot& s) { s.seq.fetch_add(1); }
inline void end_change(Slot& s) { s.seq.fetch_add(1); }

// What an accessor remembers of its last write to one page.
struct Record {
    uint64_t value_base = 0;
    uint64_t zero_id = 0;
    uint32_t counter = 0;
    bool valid = false;
    bool certain = false; // landed while the model was stable: the words hold exactly this
};

struct alignas(64) AccessorState {
    // The epoch this accessor saw when its current visit began, kIdle between
    // visits. A grace period waits until every accessor is idle or has
    // announced a newer epoch.
    std::atomic<uint64_t> announce { kIdle };
    std::atomic<uint64_t> visits { 0 };
    std::atomic<uint64_t> stable_visits { 0 };
    std::atomic<uint64_t> bytes_verified { 0 };
    std::atomic<uint64_t> segv_caught { 0 };
    std::vector<Record> records; // [record_index(...)], this thread's only
};

struct Owner {
    unsigned slot;
    bool guard;
};

// Everything one phase's threads share.
struct World {
    const Options& opt;
    Runtime& rt;
    FileSet& files;
    size_t page;
    size_t words;
    uintptr_t arena_lo;
    uintptr_t arena_hi;
    std::unique_ptr<Slot[]> slots;
    std::vector<std::unique_ptr<AccessorState>> accessors;
    Activity* activities; // accessors, then mutators, then the main thread

    // Serialises maps and unmaps (see the top of the file) and guards `owners`.
    std::mutex reuse_lock;
    std::unordered_map<uintptr_t, Owner> owners; // arena page -> slot (guard pages too)

    std::atomic<uint64_t> epoch { 1 };
    std::atomic<uint64_t> next_zero_id { 1 };
    std::atomic<unsigned> pinned { 0 };
    unsigned pinned_cap = 0;
    std::atomic<bool> stop { false };
    std::atomic<uint64_t> ops { 0 };
    std::atomic<uint64_t> mutator_bytes_verified { 0 };
    std::atomic<uint64_t> file_maps { 0 };
    std::atomic<uint64_t> checked_syncs { 0 };
    std::atomic<uint64_t> purged_pages { 0 }; // pages set_nonvolatile reported purged (mutator/volatility.cc)
    // Copy-on-write (mutator/cow_view.h, rollback.cc, cow_refusals.cc).
    std::atomic<uint64_t> clonable_maps { 0 };
    std::atomic<uint64_t> clones { 0 };
    std::atomic<uint64_t> snapshots { 0 };
    std::atomic<uint64_t> racing_views { 0 };     // clones and snapshots taken while accessors wrote the source
    std::atomic<uint64_t> racing_words { 0 };     // words of those that a writer changed during the call
    std::atomic<uint64_t> rollbacks { 0 };
    std::atomic<uint64_t> cow_refusals { 0 };     // bad copy-on-write calls refused as documented
    std::atomic<uint64_t> cow_bytes_verified { 0 }; // clone, snapshot and rollback bytes the mutators checked
    std::atomic<unsigned> max_chain_depth { 0 };  // the largest chain_depth region_stats reported
    std::atomic<unsigned> max_clone_depth { 0 };  // the model's longest line of clones of clones
    std::atomic<uint64_t> next_region_id { 1 };
    uint64_t file_ids = 0; // file_zero_id(0, 0)

    // The files' contents as read when their slot's region was mapped:
    // [slot][file page][word]. Written by the mutator holding an empty slot
    // (sequence odd), read by everyone: every access goes through shadow_load
    // and shadow_store. Allocated whole, resident only where used.
    std::unique_ptr<uint64_t[]> shadow;
    // Copy-on-write slots' untouched words: [slot][page][word] (see the top
    // of the file), accessed like `shadow`.
    std::unique_ptr<uint64_t[]> cow_shadow;

    World(const Options& o, Runtime& r, FileSet& f)
        : opt(o)
        , rt(r)
        , files(f)
        , page(size_t(sysconf(_SC_PAGESIZE)))
        , words(page / sizeof(uint64_t))
        , arena_lo(uintptr_t(r.arena_base()))
        , arena_hi(uintptr_t(r.arena_base()) + r.arena_size())
        , slots(new Slot[o.slots])
        , activities(nullptr)
        , shadow(new uint64_t[size_t(o.slots) * kMaxPages * words])
        , cow_shadow(new uint64_t[size_t(o.slots) * kMaxPages * words])
    {
        for (unsigned t = 0; t < o.threads; ++t) {
            accessors.push_back(std::make_unique<AccessorState>());
            accessors.back()->records.resize(size_t(o.slots) * 2 * kMaxPages);
        }
        pinned_cap = std::max(2u, o.slots / 32);
        file_ids = next_zero_id.fetch_add(uint64_t(o.slots) * kMaxPages);
    }

    uint64_t new_zero_id() { return next_zero_id.fetch_add(1); }
    // The zero_id of a shared file page: the same in every incarnation.
    uint64_t file_zero_id(unsigned slot, unsigned file_page) const { return file_ids + uint64_t(slot) * kMaxPages + file_page; }
    uint64_t* shadow_page(unsigned slot, unsigned file_page) const
    {
        return shadow.get() + (size_t(slot) * kMaxPages + file_page) * words;
    }
    uint64_t* cow_shadow_page(unsigned slot, unsigned page) const { return cow_shadow.get() + (size_t(slot) * kMaxPages + page) * words; }
    // What slot page p's untouched words hold: nullptr for zeros (anonymous
    // memory), else the file's shadow (at the file page, value_page) or the
    // copy-on-write shadow.
    const uint64_t* untouched_page(unsigned slot, Kind k, unsigned first, unsigned p) const
    {
        return is_file(k) ? shadow_page(slot, value_page(k, first, p)) : is_cow(k) ? cow_shadow_page(slot, p) : nullptr;
    }
};

// Acquire loads, for the reason Accessor::visit gives for its others.
inline uint64_t shadow_load(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
inline void shadow_store(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

// Whether accessor `owner`'s words of the page whose record is `record` must
// hold exactly its last write (and which), as final_sweep and the mutators'
// checks see it. Only while no accessor can be in the slot: between phases,
// or with the slot's sequence odd after a grace period.
inline bool known_exactly(const World& w, unsigned owner, size_t record, uint64_t zero_id, uint64_t* base)
{
    const Record& r = w.accessors[owner]->records[record];
    if (!(r.valid && r.certain && r.zero_id == zero_id))
        return false;
    *base = r.value_base;
    return true;
}

// Waits until no accessor can still be acting on a view older than now;
// `activity` is the waiting thread's, for the watchdog.
void grace_period(World& w, Activity& activity);

// ---------------------------------------------------------------------------
// Verification

// Which page a check is about, and what its untouched words hold.
struct PageKey {
    unsigned slot = 0;
    uint32_t incarnation = 0;
    unsigned page = 0;  // in the slot
    unsigned vpage = 0; // the page field of the values written to it (value_page)
    bool file = false;
    // Untouched words, at the positions of the data checked: nullptr for
    // zeros (anonymous memory), else the file's as read at map time.
    const uint64_t* untouched = nullptr;
    uint64_t untouched_word(size_t i) const { return untouched ? untouched[i] : 0; }
};

// Checks one page's words. `exact(owner, &base)` says whether the owner's
// words must hold exactly base | word (else untouched or any value that owner
// may have written to this page in this incarnation). Returns the number of
// bad words; reports the first.
template <typename Exact>
unsigned verify_words(const World& w, const uint64_t* data, const Span* spans, unsigned nspans, const PageKey& key,
    uintptr_t address, const PageView& view, Exact&& exact, const char* who)
{
    unsigned bad = 0;
    size_t first = 0;
    uint64_t first_value = 0, first_expected = 0;
    bool first_exact = false;
    for (unsigned k = 0; k < nspans; ++k) {
        for (size_t i = spans[k].lo; i < spans[k].hi; i += spans[k].stride) {
            const unsigned owner = unsigned(i % w.opt.threads);
            const uint64_t v = data[i];
            const uint64_t untouched = key.untouched_word(i);
            uint64_t expected = 0;
            const bool is_exact = exact(owner, &expected);
            // An exact expectation of base 0 means "must be untouched"; any
            // value the tool writes has bit 63 set, so 0 is never a real base.
            const uint64_t want = expected ? (expected | (i & kWordMask)) : untouched;
            const bool ok = is_exact ? v == want : (v == untouched || plausible(v, key.slot, key.incarnation, key.vpage, i, owner));
            if (!ok && bad++ == 0) {
                first = i;
                first_value = v;
                first_expected = want;
                first_exact = is_exact;
            }
        }
    }
    if (bad) {
        const std::string untouched = describe_value(key.untouched_word(first));
        std::string expected = first_exact ? "exactly " + describe_value(first_expected)
                                           : untouched + " or a value written by owner " + std::to_string(first % w.opt.threads);
        char file[32] = "";
        if (key.file)
            std::snprintf(file, sizeof file, " file page %u", key.vpage);
        failure("%s: wrong data at %#lx (slot %u incarnation %u page %u%s %s zero_id %llu), word %zu: read %s, expected %s; %u bad word(s) read",
            who, (unsigned long)address, key.slot, key.incarnation, key.page, file, access_name(view.access),
            (unsigned long long)view.zero_id, first, describe_value(first_value).c_str(), expected.c_str(), bad);
    }
    return bad;
}

template <typename Exact>
unsigned verify_page(const World& w, const uint64_t* data, const PageKey& key, uintptr_t address, const PageView& view,
    Exact&& exact, const char* who)
{
    const Span all { 0, w.words, 1 };
    return verify_words(w, data, &all, 1, key, address, view, std::forward<Exact>(exact), who);
}

// Checks between phases (every other thread has been joined).

// Reads every accessible page and checks it exactly where an accessor's last
// write is known to have landed. Returns the bytes verified.
uint64_t final_sweep(World& w);

// The runtime's region table, region count and commit charge must agree with
// the model.
void check_tables(World& w, const char* when);

} // namespace stress
