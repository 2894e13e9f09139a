// tools/stress/mutator/snapshot.cc — takes a snapshot of a Clonable region or
// a clone into an empty slot: a read-only view (accessors read it and probe
// that writes fault; verify_snapshot.cc reads all of it) that rollback.cc
// restores the region to. cow_view.h says what it must hold.
#include "cow_view.h"

namespace stress {

namespace {

void snapshot(Mutator& m, unsigned si, Slot& s) { make_cow_view(m, si, s, true); }

const RegisterOperation registered { { "snapshot", { .cow = 15 }, snapshot } };

} // namespace

} // namespace stress
