// tools/stress/mutator/unmap_part.cc — unmaps a random piece of a slot's
// mapping, which splits the region it came from (or trims it). The steps are
// those of a full unmap (unmap.cc) with a smaller pick.
#include "mutator.h"

namespace stress {

namespace {

void unmap_part(Mutator& m, unsigned si, Slot& s) { unmap_slot(m, si, s, false); }

const RegisterOperation registered { { "unmap_part", { .cold = 16, .cold_file = 16 }, unmap_part } };

} // namespace

} // namespace stress
