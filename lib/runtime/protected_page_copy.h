// runtime/protected_page_copy.h — the evictor's copy of a page it has
// write-protected, for the Redis swap target (a single node or a cluster).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <sys/uio.h>
#include <unistd.h>

namespace faultline {

// The evictor reads a page it has write-protected: the kernel orders every
// write to it before the protection (a write after it faults, and its pin
// cancels the eviction). The copy is the kernel's (process_vm_readv of this
// process), for two reasons: an unmap may have made the page PROT_NONE
// meanwhile (unmap protects its range before it can take the region out of
// the tree the evictor holds), which must fail the write, not crash the
// evictor with SIGSEGV; and ThreadSanitizer, which cannot see the order the
// page tables give, would report a user-space copy as racing with the
// program's last write. hiredis then copies our private buffer, never the
// program's page. (A file target needs none of this: io_uring reads the page
// in the kernel, and fails with EFAULT the same way.)
// False when the page could not be read.
//
// Where a seccomp filter refuses process_vm_readv (some container runtimes'
// defaults), the copy falls back, once and for all, to a user-space one,
// uninstrumented for ThreadSanitizer; the unmap window is then open again.
__attribute__((no_sanitize("thread"))) inline void copy_page_in_user_space(char* to, const char* from, size_t bytes) noexcept
{
    for (size_t i = 0; i < bytes; i += sizeof(uint64_t)) {
        uint64_t word;
        __builtin_memcpy(&word, from + i, sizeof word);
        __builtin_memcpy(to + i, &word, sizeof word);
    }
}

inline bool copy_protected_page(char* to, const char* from, size_t bytes) noexcept
{
    static std::atomic<bool> kernel_copy { true };
    if (kernel_copy.load(std::memory_order_relaxed)) {
        iovec local { to, bytes };
        iovec remote { const_cast<char*>(from), bytes };
        const ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
        if (n == ssize_t(bytes))
            return true;
        if (n >= 0 || (errno != ENOSYS && errno != EPERM))
            return false;
        kernel_copy.store(false, std::memory_order_relaxed);
    }
    copy_page_in_user_space(to, from, bytes);
    return true;
}

} // namespace faultline
