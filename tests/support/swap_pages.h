// What the tests of the swap pager on Redis share: the skip when there is
// no swap pager, their configuration, and the pages they write and check.
#pragma once

#include "test_support.h"

#include <faultline/runtime.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <string>

namespace faultline::testing {

constexpr unsigned kSwapBatch = 16;

// The swap pager needs userfaultfd with write-protect faults: without, the
// runtime (or its swap) is not here at all, which is a skip, not a failure.
#define UFFD_OR_SKIP()                                                                                     \
    do {                                                                                                   \
        Config probe;                                                                                      \
        probe.memory_budget = 64 * kPage;                                                                  \
        probe.eviction_batch_pages = ::faultline::testing::kSwapBatch;                                     \
        auto rt = Runtime::create(probe);                                                                  \
        if (!rt)                                                                                           \
            GTEST_SKIP() << "userfaultfd unavailable: " << rt.error().message();                           \
        if (!(*rt)->stats().swap_enabled)                                                                  \
            GTEST_SKIP() << "no swap pager here (it needs write-protect faults on anonymous memory)";      \
    } while (0)

// A budget of `budget_pages`, FIFO eviction (predictable), swapping to `url`.
inline Config redis_config(size_t budget_pages, const std::string& url)
{
    Config c;
    c.memory_budget = budget_pages * kPage;
    c.eviction_batch_pages = kSwapBatch;
    c.eviction_policy = EvictionPolicy::Fifo;
    c.swap_path = url;
    return c;
}

// The byte generation `gen` writes at offset `at` of page `page`.
inline unsigned char pattern(size_t page, size_t at, unsigned gen)
{
    return static_cast<unsigned char>(page * 131 + at * 7 + gen * 29 + 1);
}

inline void fill_page(char* base, size_t page, unsigned gen)
{
    for (size_t at = 0; at < kPage; ++at)
        base[page * kPage + at] = char(pattern(page, at, gen));
}

} // namespace faultline::testing
