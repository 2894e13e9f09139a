// os/uffd_compat.h — the one place for kernel uAPI constants newer than the
// installed headers (userfaultfd, PAGEMAP_SCAN, mseal, VMA names) (Debian 12 ships 6.1 headers; the runtime meets kernels
// up to today's). Nothing here is assumed to work: every feature is detected
// at run time through UFFDIO_API, the register ioctl mask, or the syscall's
// own ENOSYS/EINVAL.
#pragma once

#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

// userfaultfd features added after 6.1.
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13) // 6.4
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14) // 6.6
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15) // 6.7
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16) // 6.8
#endif

// UFFDIO_CONTINUE_MODE_WP (6.4): map the page-cache page write-protected.
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif

// UFFDIO_POISON (6.6): mark a range so that any access raises SIGBUS.
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
    struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
    __u64 mode;
    __s64 updated; // bytes poisoned, or -errno
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

// UFFDIO_MOVE (6.8): move exclusively-owned anonymous pages.
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
    __u64 dst;
    __u64 src;
    __u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
    __u64 mode;
    __s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

// PAGEMAP_SCAN (6.7): an ioctl on /proc/self/pagemap that walks only the
// populated page tables of a range and reports runs of pages by category.
#ifndef PAGEMAP_SCAN
#include <linux/types.h>
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
struct page_region {
    __u64 start;
    __u64 end; // exclusive
    __u64 categories;
};
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
    __u64 size;
    __u64 flags;
    __u64 start;
    __u64 end;
    __u64 walk_end; // where the walk stopped (written by the kernel)
    __u64 vec;
    __u64 vec_len;
    __u64 max_pages;
    __u64 category_inverted;
    __u64 category_mask;
    __u64 category_anyof_mask;
    __u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

// mseal(2) (6.10). x86_64 and aarch64 share the generic number.
#ifndef SYS_mseal
#define SYS_mseal 462
#endif

// prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME) (5.17, CONFIG_ANON_VMA_NAME).
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif
