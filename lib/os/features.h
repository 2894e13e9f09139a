// os/features.h — the optional kernel features the runtime uses, their names
// in FAULTLINE_DISABLE, and the mask that hides them.
//
// Every feature here has a fallback, and the masked-feature test suite runs
// with all of them hidden (docs/kernels.md says which kernel brings which).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace faultline::os {

enum class Feature : uint32_t {
    Syscall,   // userfaultfd(2); fallback: /dev/userfaultfd
    DevNode,   // /dev/userfaultfd (6.1); fallback: userfaultfd(2) only
    ThreadId,  // UFFD_FEATURE_THREAD_ID: per-thread counters, targeted SIGBUS fallback
    Poison,    // UFFDIO_POISON (6.6): SIGBUS to the faulting thread; fallback: SIGBUS mapping
    ZeroPage,  // UFFDIO_ZEROPAGE: read faults map the zero page; fallback: copy zeros
    Mseal,     // mseal(2) (6.10): kernel-enforced immutability; fallback: runtime-enforced only
    AnonName,  // PR_SET_VMA_ANON_NAME: names in /proc/self/maps; fallback: names kept in the runtime only
    WriteProtect, // UFFD_FEATURE_PAGEFAULT_FLAG_WP (5.7): write-protect faults on anonymous memory;
                  // fallback: objects that track writes treat every resident page as written
    WpShmem,   // UFFD_FEATURE_WP_HUGETLBFS_SHMEM (5.19): write-protect on memfd/shmem ranges
    Minor,     // UFFD_FEATURE_MINOR_SHMEM (5.14): minor faults + UFFDIO_CONTINUE on memfd ranges
    PagemapScan, // PAGEMAP_SCAN ioctl (6.7): statistics walk only populated page tables;
                 // fallback: the objects' page states tell which blocks to read from pagemap
    IoUring,   // io_uring (5.1; can be disabled by sysctl): file reads and writes;
               // fallback: one worker thread doing pread/pwrite
    WpAsync,   // UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN (6.7): shared file regions track writes without a
               // fault per first write; fallback: write-protect faults (wp_shmem), else every cached page
    Psi,       // PSI memory-pressure triggers (4.20; refused on some kernels): purgeable memory is purged
               // under pressure; fallback: purged only explicitly, by budget or by the commit limit
    ContinueWp, // UFFDIO_CONTINUE_MODE_WP (6.4): cached file pages mapped write-protected in one call;
                // fallback: mapped writable and counted dirty at once (written at the next sync)
    DontUnmap, // mremap(MREMAP_DONTUNMAP) of shared mappings (5.13): freezing a clonable region moves its
               // page tables aside for a background thread to tear down; fallback: torn down in the call
    Count,
};

const char* feature_name(Feature) noexcept;

class FeatureSet {
public:
    bool has(Feature f) const noexcept { return (bits_ >> unsigned(f)) & 1u; }
    void set(Feature f, bool on = true) noexcept
    {
        if (on)
            bits_ |= 1u << unsigned(f);
        else
            bits_ &= ~(1u << unsigned(f));
    }
    FeatureSet without(const FeatureSet& other) const noexcept { return FeatureSet(bits_ & ~other.bits_); }
    uint32_t bits() const noexcept { return bits_; }
    std::vector<std::string> names() const;

    FeatureSet() = default;
    explicit FeatureSet(uint32_t bits) : bits_(bits) {}

private:
    uint32_t bits_ = 0;
};

// Parses "poison,thread_id,..." ("all" hides every feature). Unknown names
// are returned in `unknown` so the caller can warn about them.
FeatureSet parse_feature_list(std::string_view list, std::vector<std::string>* unknown = nullptr);

// The mask from $FAULTLINE_DISABLE plus `extra`.
FeatureSet disabled_features(std::string_view extra, std::vector<std::string>* unknown = nullptr);

} // namespace faultline::os
