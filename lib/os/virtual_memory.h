// os/virtual_memory.h — thin wrappers over mmap, mprotect, madvise, mseal and
// PR_SET_VMA_ANON_NAME. Each returns 0 or -errno; none allocates.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline::os {

size_t page_size() noexcept;

// PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE at a kernel-chosen
// address, `alignment`-aligned (the tail and head of an over-reservation are
// trimmed). Returns the address or nullptr with errno set.
void* reserve(size_t size, size_t alignment) noexcept;
// Replaces [addr, addr+len) by fresh PROT_NONE anonymous memory, dropping its
// pages, names and any foreign mapping placed over it.
int replace_with_reservation(uintptr_t addr, size_t len) noexcept;
int unmap(uintptr_t addr, size_t len) noexcept;
// Maps `fd` MAP_SHARED|MAP_FIXED over [addr, addr+len) from offset 0.
int map_shared_fixed(uintptr_t addr, size_t len, int prot, int fd) noexcept;
// Maps `fd` (`type`: MAP_SHARED or MAP_PRIVATE) with MAP_FIXED over
// [addr, addr+len) from `offset`.
int map_fd_fixed(uintptr_t addr, size_t len, int prot, int type, int fd, size_t offset) noexcept;
// map_fd_fixed for a remap that keeps every byte the range shows (a shared
// mapping of a memfd becoming a private one of the same memfd). Made with
// the raw system call: to the program's memory model nothing is written,
// but ThreadSanitizer's mmap interceptor treats any mmap as a write to the
// range and would report the program's own concurrent writes as races.
int remap_fd_fixed_keeping_contents(uintptr_t addr, size_t len, int prot, int type, int fd, size_t offset) noexcept;
// Moves the page tables of the one mapping [addr, addr+len) to a new
// address the kernel picks (mremap with MREMAP_DONTUNMAP), leaving the range
// mapped as before but with no page-table entries: its next accesses fault
// the pages in again. Whole page tables move at once when nothing is
// registered with userfaultfd there, so the cost does not grow with the
// pages mapped. Returns the new address or -errno (EINVAL when the range is
// not one mapping, or on kernels before 5.13 for anything but private
// anonymous memory); on failure nothing moved.
long move_page_tables_aside(uintptr_t addr, size_t len) noexcept;
// Fresh private anonymous memory over [addr, addr+len), unregistered.
int map_anonymous_fixed(uintptr_t addr, size_t len, int prot) noexcept;
int protect(uintptr_t addr, size_t len, int prot) noexcept;
int discard(uintptr_t addr, size_t len) noexcept;
// Reads `len` bytes of this process's memory at `addr` through
// /proc/self/mem, which — as a debugger does — also reads mappings the
// program made unreadable (PROT_NONE). For copies of such memory; 0 or
// -errno.
int read_own_memory(uintptr_t addr, void* out, size_t len) noexcept;
int seal(uintptr_t addr, size_t len) noexcept;
int set_anon_name(uintptr_t addr, size_t len, const char* name) noexcept;
// Maps the empty file `empty_fd` (a memfd of size 0) over `addr`: every
// access to it raises SIGBUS. The fallback for UFFDIO_POISON.
int map_sigbus_page(uintptr_t addr, size_t len, int prot, int empty_fd) noexcept;
// A memfd of size 0 for map_sigbus_page(), or -errno.
int create_empty_memfd() noexcept;

// Run-time probes (each makes the system call on a scratch mapping).
bool kernel_has_mseal() noexcept;
bool kernel_has_anon_name() noexcept;
// move_page_tables_aside() of a shared memfd mapping (5.13).
bool kernel_moves_shared_page_tables() noexcept;

} // namespace faultline::os
