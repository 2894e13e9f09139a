// tools/stress/mutator/clone.cc — clones a Clonable region or a clone (a clone
// of a clone when the slot holds one) into an empty slot; the clone is then a
// copy-on-write slot of its own that accessors read and write and the other
// operations clone, snapshot, discard and unmap. cow_view.h says what the
// clone must hold, with writers racing the call or not.
#include "cow_view.h"

namespace stress {

namespace {

void clone(Mutator& m, unsigned si, Slot& s) { make_cow_view(m, si, s, false); }

const RegisterOperation registered { { "clone", { .cow = 20 }, clone } };

} // namespace

} // namespace stress
