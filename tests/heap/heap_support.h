// Helpers for the tests that run under libfaultline_malloc.so.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>

namespace faultline::heap_testing {

// The preloaded library's queries, looked up at run time: this binary does
// not link it (it is preloaded, or the tests skip).
inline bool heap_range(uintptr_t& base, size_t& size)
{
    using Fn = int (*)(void**, size_t*);
    static auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "faultline_heap_range"));
    void* b = nullptr;
    if (!fn || fn(&b, &size) != 0)
        return false;
    base = uintptr_t(b);
    return true;
}

inline bool in_heap(const void* p, size_t bytes)
{
    uintptr_t base = 0;
    size_t size = 0;
    return heap_range(base, size) && uintptr_t(p) >= base && uintptr_t(p) + bytes <= base + size;
}

// A counter of the heap runtime's to_json() ("name": value).
inline uint64_t heap_counter(const char* name)
{
    using Fn = size_t (*)(char*, size_t);
    static auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "faultline_heap_json"));
    if (!fn)
        return 0;
    std::string json(fn(nullptr, 0) + 1, '\0');
    fn(json.data(), json.size());
    const std::string key = std::string("\"") + name + "\":";
    const size_t at = json.find(key);
    return at == std::string::npos ? 0 : std::strtoull(json.c_str() + at + key.size(), nullptr, 10);
}

#define ASSERT_HEAP_ACTIVE()                                                                                     \
    do {                                                                                                         \
        uintptr_t base_ = 0;                                                                                     \
        size_t size_ = 0;                                                                                        \
        ASSERT_TRUE(::faultline::heap_testing::heap_range(base_, size_))                                         \
            << "libfaultline_malloc.so is not preloaded (run through meson test, which sets LD_PRELOAD)";        \
    } while (0)

} // namespace faultline::heap_testing
