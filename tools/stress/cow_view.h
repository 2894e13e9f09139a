// tools/stress/cow_view.h — the steps the copy-on-write operations share:
// clone and snapshot (mutator/clone.cc, mutator/snapshot.cc) make a view,
// rollback and the snapshot check read whole slots.
//
// What a clone must hold
// ----------------------
// A clone's words right after clone() are the source's at the moment of the
// call. Half the clones (and snapshots) are quiesced: the source's sequence
// is odd and a grace period has passed, so no accessor writes it, and the
// clone must equal what the mutator read from the source just before, word
// for word. The other half race: the source's sequence goes even again for
// the call, so accessors keep writing it, and the mutator brackets the call
// with two quiesced reads. For word i of page p (owner t = i % threads) the
// clone may then hold only
//   - what the source held before the call, or
//   - a value t wrote to that page during the call: the source's slot,
//     incarnation, page, word and owner, with a counter after the one t's
//     record had before the call and at most the one it had after.
// A word no writer touched during the call (the counters are equal) must
// therefore match exactly. The clone's words, once checked, become its
// untouched words in the model (World::cow_shadow), so every later read of
// the clone expects exactly them or the clone's own writes; and the source's
// words after the call are checked against the accessors' certain writes,
// so a write racing the clone cannot have been lost.
#pragma once

#include "mutator.h"

#include <cstdint>

namespace stress {

// Reads slot s's pages [0, n) (all mapped) into out[p * words + i]; reports
// a SIGSEGV and returns false.
bool read_slot(Mutator& m, unsigned si, const Slot& s, unsigned n, uint64_t* out, const char* what);

// Checks pages [0, n) of a slot read while no accessor could be in it
// against the model (exactly where an accessor's last write is certain).
// Returns the bad words.
unsigned verify_slot(Mutator& m, unsigned si, const Slot& s, unsigned n, const uint64_t* data, const char* what);

// Takes an empty slot other than si (its `busy` flag), or returns -1.
int take_empty_slot(Mutator& m, unsigned si);

// Takes slot j's `busy` flag if it is free (and j != si).
bool take_slot(Mutator& m, unsigned si, unsigned j);
void release_slot(Mutator& m, unsigned j);

// Clones (or snapshots) the copy-on-write region of slot si into an empty
// slot, and checks the result as described above.
void make_cow_view(Mutator& m, unsigned si, Slot& s, bool snapshot);

// Memfds of Clonable regions (named kNames[kCowName]) the process holds:
// none once every copy-on-write region is unmapped (main.cc checks).
unsigned count_cow_memfds();

// Whether a 15-bit writer's counter c lies in (lo, hi], modulo 2^15.
inline bool counter_in(uint32_t c, uint32_t lo, uint32_t hi)
{
    const uint32_t d = (c - lo) & 0x7fff, span = (hi - lo) & 0x7fff;
    return d > 0 && d <= span;
}

} // namespace stress
