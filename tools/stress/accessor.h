// tools/stress/accessor.h — the accessor threads, which read and write the
// regions' pages and check every word they read against the model.
#pragma once

#include <cstdint>

namespace stress {

struct World;

// Accessor `index`'s thread body: visits slots until w.stop is set.
void run_accessor(World& w, unsigned index, uint64_t seed);

} // namespace stress
