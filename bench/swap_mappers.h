// bench/swap_mappers.h — the sides of the swap pager's cases
// (docs/performance.md, "The swap pager"): a faultline anonymous region under
// a memory budget (swap-backed), a freshly written file read with io_uring,
// and the kernel's own swap under a memory cgroup, in a child process.
//
// As Mapper (bench.h): map() starts a repetition (creates and prepares the
// region, untimed) and returns it; unmap() ends it.
#pragma once

#include "bench.h"

#include <faultline/runtime.h>

#include <liburing.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace bench {

// A side that cannot exist on this machine (not root, no swap file support,
// no memory cgroup): the case is skipped with this message, not failed.
struct Unavailable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A private anonymous region (Runtime::map_anonymous) of a Runtime created
// for the repetition alone, with `config` (a memory budget: the region is
// swap-backed). map() checks that the runtime swaps, then runs `prepare`
// (untimed) on the region.
class SwapHeapMapper final : public Mapper {
public:
    SwapHeapMapper(faultline::Config config, std::function<void(faultline::Runtime&, char*, size_t)> prepare,
        std::string label = "faultline")
        : config_(std::move(config)), prepare_(std::move(prepare)), label_(std::move(label))
    {
    }
    std::string name() const override { return label_; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;
    faultline::Runtime& runtime() { return *runtime_; }
    // The far cases use one case's faultline side as another's baseline.
    void relabel(std::string label) { label_ = std::move(label); }

private:
    faultline::Config config_;
    std::function<void(faultline::Runtime&, char*, size_t)> prepare_;
    std::string label_;
    std::unique_ptr<faultline::Runtime> runtime_;
};

// Waits (untimed) until the evictor has swapped out all but the budget's
// worth of a freshly written region of `pages`: swapped_out covers them and
// the resident pages are within the budget. fail()s after 60 s.
void wait_for_swap_out(faultline::Runtime& rt, size_t pages);

// No mapping: a file of the region's size, written afresh by every map()
// (a new pattern each time, `fill`) in the directory faultline's swap file
// goes to ($TMPDIR, else /tmp) and left in the page cache, as the swap file
// the runtime has just written is; read one 4 KiB page at a time with
// io_uring, each read waited for before the next is submitted (a faulting
// thread has one read outstanding). map() returns the read buffer.
class FreshFileReader final : public Mapper {
public:
    explicit FreshFileReader(std::function<void(uint64_t seed, size_t first_page, size_t pages, char* out)> fill);
    ~FreshFileReader() override;
    std::string name() const override { return "io_uring-read-qd1"; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;
    const char* read(size_t page);
    uint64_t seed() const { return seed_; }

private:
    std::function<void(uint64_t, size_t, size_t, char*)> fill_;
    io_uring ring_ {};
    char* buffer_ = nullptr;
    int fd_ = -1;
    uint64_t seed_ = 0;
};

// The kernel's swap: a swap file swapped on for as long as this lives, and a
// memory cgroup limited to `limit_bytes`. Needs root and a filesystem that
// takes swap files; throws Unavailable otherwise. The swap file is created
// in $TMPDIR (else /tmp) and gets the kernel's default priority (below any
// swap the machine has already).
class KernelSwap {
public:
    KernelSwap(size_t swap_bytes, size_t limit_bytes);
    ~KernelSwap();
    KernelSwap(const KernelSwap&) = delete;
    KernelSwap& operator=(const KernelSwap&) = delete;
    // cgroup.procs of the limited cgroup: a process joins by writing its pid.
    const std::string& procs() const { return procs_; }
    // "cgroup v1 memory.limit_in_bytes 64 MiB, 272 MiB swap file on ext4".
    std::string describe() const;

private:
    void cleanup() noexcept; // swapoff, remove the file and the cgroup

    std::string swap_path_;
    std::string cgroup_dir_;
    std::string procs_;
    std::string description_;
    bool swapped_on_ = false;
};

// Private anonymous memory of a child process in KernelSwap's cgroup: the
// kernel's page reclaim and swap decide what stays resident. map() forks
// the child, which joins the cgroup, maps and `prepare`s the region; the
// case's baseline_run and baseline_verify call run() and verify(), which
// run `run` and `check` in the child on its region (the timed part is timed
// there). `check` returns the first wrong page, or -1. unmap() ends the child.
class KernelSwapMapper final : public Mapper {
public:
    KernelSwapMapper(std::shared_ptr<KernelSwap> swap, std::function<void(char*, size_t)> prepare,
        std::function<uint64_t(char*)> run, std::function<long(const char*)> check);
    ~KernelSwapMapper() override;
    std::string name() const override { return "kernel-swap-cgroup"; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;
    uint64_t run();
    // The child's CPU time (its own and the reclaim and swap I/O the kernel
    // did in its context) over the last run().
    uint64_t cpu_ns() const { return cpu_ns_; }
    // fail()s on a wrong page, or when the child has nothing in swap.
    void verify();

private:
    [[noreturn]] void child(size_t bytes, int in, int out) noexcept;
    void send(char command);
    void end_child() noexcept;
    size_t swapped_bytes() const; // VmSwap of the child

    std::shared_ptr<KernelSwap> swap_;
    std::function<void(char*, size_t)> prepare_;
    std::function<uint64_t(char*)> run_;
    std::function<long(const char*)> check_;
    pid_t pid_ = -1;
    int to_child_ = -1;
    int from_child_ = -1;
    uint64_t cpu_ns_ = 0;
};

} // namespace bench
