// fault/page_installer.h — the last step of a fault: put pages in place.
//
// One PageInstaller belongs to one handler thread. It owns a read-only
// buffer of zeros (allocated when the thread starts, never on the fault
// path) and turns the kernel's answers into FaultOutcomes:
//   EEXIST  -> success: someone installed the page first (another handler
//              thread, or fault-around); continue past it.
//   EAGAIN  -> partial progress or the layout is changing: retry a bounded
//              number of times, then let the thread refault.
//   ENOENT, EFAULT -> the mapping went away under us: the region died.
//   ESRCH   -> the process is exiting.
//   ENOMEM and anything else -> the page cannot be provided: SIGBUS.
// Installs use DONTWAKE; the handler wakes once per batch.
#pragma once

#include "memory/vm_object.h"
#include "os/userfaultfd.h"

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace faultline::fault {

struct InstallerCounters {
    std::atomic<uint64_t> pages_installed { 0 };
    std::atomic<uint64_t> eexist { 0 };
    std::atomic<uint64_t> eagain_retries { 0 };
};

class PageInstaller {
public:
    // `max_pages` bounds one zero-fill call (the fault-around window).
    PageInstaller(os::Userfaultfd& uffd, size_t page_size, size_t max_pages, bool use_zeropage, InstallerCounters& counters);
    ~PageInstaller();
    PageInstaller(const PageInstaller&) = delete;
    PageInstaller& operator=(const PageInstaller&) = delete;

    bool ready() const noexcept { return zeros_ != nullptr; }

    // Installs zero-filled pages over [start, start+len): writable private
    // pages (UFFDIO_COPY from the zero buffer) when `writable`, else the
    // shared zero page (UFFDIO_ZEROPAGE, or a copy when that is unavailable).
    // `installed` receives the pages this call placed (EEXIST pages excluded).
    memory::FaultOutcome zero_fill(uintptr_t start, size_t len, bool writable, uint64_t* installed) noexcept;

    size_t page_size() const noexcept { return page_size_; }

private:
    long install_chunk(uintptr_t start, size_t len, bool writable, size_t* done) noexcept;

    os::Userfaultfd& uffd_;
    size_t page_size_;
    size_t max_bytes_;
    bool use_zeropage_;
    InstallerCounters& counters_;
    void* zeros_ = nullptr;
};

} // namespace faultline::fault
