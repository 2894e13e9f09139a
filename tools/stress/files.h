// tools/stress/files.h — the files that file regions map: one per slot.
//
// Each slot has a file of its own, kMaxPages pages long, so a slot's file
// region never shares its file with another slot's: what a file holds then
// depends only on that slot's history, which its mutator (holding the slot)
// can reason about alone. A file's initial contents are a pure function of
// (slot, page, word), and never a value an accessor writes (bit 63 is clear).
//
// The files are created in a new temporary directory and unlinked at once,
// directory included, keeping only a read-write descriptor each: nothing is
// left behind however the run ends (a crash, the watchdog's _exit). The
// runtime reopens a descriptor through /proc/self/fd, which works for an
// unlinked file, and so does map_file(path) given that path.
//
// The files outlive the phases (one set per run): a later phase's runtime
// maps what the earlier ones wrote back.
#pragma once

#include <faultline/store.h>

#include <bitset>
#include <memory>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace stress {

// bits 56-62: 0x5f (a marker; bit 63, which every written value has, is
// clear); 23-32: slot; 9-14: file page; 0-8: word.
constexpr uint64_t kFileMark = uint64_t(0x5f) << 56;

inline uint64_t initial_file_value(unsigned slot, unsigned page, size_t word)
{
    return kFileMark | (uint64_t(slot & 0x3ff) << 23) | (uint64_t(page & 0x3f) << 9) | (word & 0x1ff);
}

class FileSet {
public:
    // Creates `slots` files of `pages` pages under $TMPDIR (or /tmp); exits
    // with a message if it cannot.
    FileSet(unsigned slots, unsigned pages, size_t page_size);
    ~FileSet();
    FileSet(const FileSet&) = delete;
    FileSet& operator=(const FileSet&) = delete;

    // The slot's file, open O_RDWR.
    int fd(unsigned slot) const { return fds_[slot]; }
    // A path that opens it (its /proc/self/fd link).
    std::string path(unsigned slot) const;
    // A new descriptor of it opened with `flags` (O_RDONLY, O_WRONLY, ...),
    // or -errno. The caller closes it.
    int reopen(unsigned slot, int flags) const;
    // A descriptor of a directory (for map_file's ENODEV).
    int directory() const { return dir_fd_; }
    // Whether the file system accepts O_DIRECT (map_file's direct_io
    // fails with EINVAL otherwise).
    bool direct_io_supported() const { return direct_ok_; }

    // Reads one page of the slot's file; false (and a failure reported) if
    // the read fails or is short.
    bool read_page(unsigned slot, unsigned page, uint64_t* out) const;

    // Incarnations of the slot that were shared file regions, modulo the
    // value's incarnation field: values written in them may be in the file,
    // values written in any other may not (private writes never reach the
    // file). Only ever added to, so a wrapped field can only make the check
    // weaker, never wrong. Belongs to the mutator holding the slot.
    void note_shared(unsigned slot, uint32_t incarnation) { shared_[slot].set(incarnation & 0x7fff); }

    // Slots whose file is mapped through a user Store (Runtime::map_store)
    // instead of map_file: the store reads and writes the slot's file with
    // pread/pwrite, so the model of a shared file region holds unchanged.
    // Such a slot is only ever mapped through its store (one object per
    // slot and run, so one cache): a file cache of the same file beside it
    // would not see the store's writes.
    static bool via_store(unsigned slot) { return slot % 4 == 3; }
    std::shared_ptr<faultline::Store> store(unsigned slot);
    bool was_shared(unsigned slot, uint32_t incarnation_field) const { return shared_[slot].test(incarnation_field & 0x7fff); }

private:
    size_t page_size_;
    std::vector<int> fds_;
    int dir_fd_ = -1;
    bool direct_ok_ = false;
    std::vector<std::bitset<0x8000>> shared_;
    std::vector<std::shared_ptr<faultline::Store>> stores_;
};

} // namespace stress
