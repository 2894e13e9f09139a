// tests/fuzz/fuzz_input.h — what the libFuzzer targets here share: a reader
// that turns the fuzzer's bytes into operations and arguments, the expected
// outcome of a call, and the check that stops the run on a disagreement with
// the target's model.
//
// The reader never fails: past the end of the input every read yields 0, so
// each input decodes to some finite operation sequence and the mutator's
// small changes stay small changes of that sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace fuzz {

class Input {
public:
    Input(const uint8_t* data, size_t size)
        : data_(data)
        , size_(size)
    {
    }

    bool done() const { return at_ >= size_; }
    uint8_t u8() { return at_ < size_ ? data_[at_++] : 0; }
    uint16_t u16() { return uint16_t(u8() | u8() << 8); }
    uint32_t u32() { return uint32_t(u16() | uint32_t(u16()) << 16); }
    uint64_t u64() { return u32() | uint64_t(u32()) << 32; }
    bool flag() { return u8() & 1; }
    // A byte string of up to `max` bytes (length byte first), for names and
    // JSON strings: any bytes, NULs included.
    std::string bytes(size_t max)
    {
        size_t n = u8() % (max + 1);
        std::string s;
        for (size_t i = 0; i < n && !done(); ++i)
            s += char(u8());
        return s;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t at_ = 0;
};

// Which outcomes a call may have: it must fail with one of `errors` when
// any is listed (each is the errno the documentation gives for a condition that
// holds; when several hold, the library may report any of them), and
// succeed otherwise — unless `may_fail_with` allows a documented failure
// whose condition the model does not follow (O_DIRECT support, say).
struct Expect {
    std::vector<int> errors;
    std::vector<int> may_fail_with;
    void add(int e) { errors.push_back(e); }
    bool fails() const { return !errors.empty(); }
    bool allows(int rc) const
    {
        if (rc >= 0)
            return errors.empty();
        for (int e : errors)
            if (rc == -e)
                return true;
        for (int e : may_fail_with)
            if (rc == -e)
                return true;
        return false;
    }
};

// Stops the run where the library and the model disagree: libFuzzer saves
// the input as a crash artifact and the message says which check failed.
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            std::fprintf(stderr, "%s:%d: check failed: %s\n  ", __FILE__,      \
                         __LINE__, #cond);                                     \
            std::fprintf(stderr, __VA_ARGS__);                                 \
            std::fprintf(stderr, "\n");                                        \
            __builtin_trap();                                                  \
        }                                                                      \
    } while (0)

} // namespace fuzz
