// runtime/protected_page_copy.h — the evictor's copy of a page it has
// write-protected, for the Redis swap target (a single node or a cluster).
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline {

// The evictor reads a page it has write-protected: the kernel orders every
// write to it before the protection (a write after it faults, and its pin
// cancels the eviction). ThreadSanitizer cannot see that order through the
// page tables and reports the read as racing with the program's last write,
// so this one copy is left uninstrumented — and hiredis then copies our
// private buffer, never the program's page. (A file target needs none of
// this: io_uring reads the page in the kernel.)
__attribute__((no_sanitize("thread"))) inline void copy_protected_page(char* to, const char* from, size_t bytes) noexcept
{
    for (size_t i = 0; i < bytes; i += sizeof(uint64_t)) {
        uint64_t word;
        __builtin_memcpy(&word, from + i, sizeof word);
        __builtin_memcpy(to + i, &word, sizeof word);
    }
}

} // namespace faultline
