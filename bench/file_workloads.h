// bench/file_workloads.h — the file cases: faultline file regions
// (Runtime::map_file) against the kernel's mmap(2) of the same file, or
// against plain io_uring reads of it.
//
// Every case works on the run's test file (test_file.h), whose bytes the
// checks can recompute: a wrong byte anywhere — read through a region, read
// by io_uring, or written back by a sync — fails the case.
#pragma once

#include "bench.h"
#include "test_file.h"

#include <faultline/runtime.h>

#include <functional>
#include <memory>
#include <string>

namespace bench {

// One file case: its workload and the two sides it compares. The faultline
// side maps the file from a Runtime created for each repetition (and
// destroyed after it), so neither the runtime's cache of the file nor its
// threads' placement carries over from one repetition to the next.
struct FileCase {
    Workload workload;
    std::unique_ptr<Mapper> faultline;
    std::unique_ptr<Mapper> baseline;
};

// Reads every page in file order (eight 8-byte loads per page, 512 bytes
// apart) from a fresh shared read-only mapping, with the file's page cache
// dropped first. Baseline: mmap(MAP_SHARED, PROT_READ), also cold.
FileCase file_seq_read_cold(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config);
// The same with FileMapOptions::direct_io: O_DIRECT reads straight into the
// runtime's cache, skipping the file system's page cache and its copy.
FileCase file_seq_read_cold_direct(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config);
// The same loop, timed on a second pass over a mapping whose every page was
// touched once already (untimed). Baseline: a second pass over mmap.
FileCase file_seq_read_warm(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config);
// `reads` distinct pages in a fixed pseudo-random order, cold, the
// region's default readahead (an isolated fault reads its own page).
// Baseline: io_uring 4 KiB reads of the same offsets, one at a time.
FileCase file_rand_read_cold(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config,
    size_t reads);
// The loop of file_rand_read_cold against its baseline, with `side` as the
// faultline side (a file region, a umap() region, ...): every page read is
// compared with the file (`where` names the side in a failure), then
// `check` (may be empty) sees the mapping and the bytes a cold pass reads.
FileCase random_reads(std::string name, std::shared_ptr<TestFile> file, size_t reads, std::unique_ptr<Mapper> side,
    std::function<void(const char* base, size_t bytes_needed)> check, const std::string& where);
// Writes one byte in every page of a shared read-write mapping, then
// Runtime::sync(SyncFlags::Sync); cold. Baseline: mmap(MAP_SHARED,
// PROT_READ|PROT_WRITE), the same writes, msync(MS_SYNC).
FileCase file_write_sync(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config);
// fork() of a process holding a shared read-only mapping of the whole file,
// every page read (untimed): ms from fork() until the child runs its own
// code (its fork handlers behind it); the child then checks pages spread
// over the file. On the faultline side the child maps the file itself
// instead of the runtime's cache (docs/api.md, "fork"); nothing is dirty,
// so this is the remapping's price, not a write-back's. Baseline: the same
// on mmap(MAP_SHARED).
FileCase file_fork(std::string name, std::shared_ptr<TestFile> file, const faultline::Config& config);

} // namespace bench
