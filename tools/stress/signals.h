// tools/stress/signals.h — memory accesses that survive SIGSEGV.
//
// Accesses to a region that is concurrently unmapped or made inaccessible
// raise SIGSEGV, and so do the probes that check that protection is
// enforced. The handler jumps back into the access function only when the
// faulting thread armed it and the address lies in the current arena;
// anything else is a real crash and is passed on.
#pragma once

#include <cstddef>
#include <cstdint>

namespace stress {

// The words of a page one read covers: [lo, hi), every stride-th word.
struct Span {
    size_t lo = 0, hi = 0, stride = 1;
    size_t count() const { return hi > lo ? (hi - lo + stride - 1) / stride : 0; }
};

// Installs the SIGSEGV and SIGBUS handler (once, at start).
void install_signal_handlers();

// Every thread that touches region memory calls this first.
void prepare_thread_for_faults();

// The arena of the current phase's runtime: only SIGSEGVs inside it are
// expected. [0, 0) between phases.
void set_guarded_arena(uintptr_t lo, uintptr_t hi);

// Each returns false when the access raised SIGSEGV inside the arena. The
// accesses are atomics: accessors share pages (each word has one writer, but
// pages are read by all), and atomics keep that well-defined and free of
// sanitizer reports.

// Copies the spans' words of `src` to the same positions of `out`.
bool guarded_read(const uint64_t* src, uint64_t* out, const Span* spans, unsigned count);
bool guarded_read(const uint64_t* src, uint64_t* out, size_t words);

// Stores value_base | word into every word first, first + stride, ...
bool guarded_write(uint64_t* dst, size_t first, size_t stride, size_t words, uint64_t value_base);

// Accesses that change nothing, to check that a page is (or is not) readable
// or writable without disturbing the model.
bool guarded_probe_write(uint64_t* p);
bool guarded_probe_read(const uint64_t* p);

} // namespace stress
