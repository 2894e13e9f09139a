// runtime/fork_preparation.h — what the runtime does around fork(), in one order.
//
// Several parts of the runtime must act before a fork: copy-on-write
// freezes live clonable regions (under each runtime's API lock, released
// again), file regions write their dirty pages back and record how the child
// remaps them (under each runtime's API lock, held until the fork returned:
// runtime/file_fork_plan.h), and the evictors read every swapped page back and stay held
// across the fork (under their registry's lock, released in the parent and
// child handlers). pthread_atfork runs prepare handlers in the reverse of
// the order they were registered, which depends on which part a program
// used first; a part that takes the API lock after another holds its own
// lock across the fork would invert the order map_anonymous takes them in
// (API lock, then the evictors' registry): a deadlock with a thread mapping
// while another forks. So there is one pthread_atfork registration, and the
// stages run in the order of this enum.
#pragma once

namespace faultline {

enum class ForkStage {
    Freeze,    // copy-on-write (runtime/cow_regions.cc)
    Files,     // file regions: API locks held across the fork (runtime/runtime_core.cc)
    Evictors,  // the swap pager (runtime/evictor.cc)
    Reaper,    // page tables moved aside for a thread to unmap (runtime/mapping_reaper.cc): last, its
               // locks are leaves
    Count,
};

struct ForkHandlers {
    void (*prepare)() = nullptr;
    void (*parent)() = nullptr;
    void (*child)() = nullptr;
};

// Installs the handlers of `stage` (once per stage; later calls for the
// same stage are ignored). Thread-safe.
void install_fork_handlers(ForkStage stage, ForkHandlers handlers);

} // namespace faultline
