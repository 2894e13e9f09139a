// support/runtime_thread.h — the first thing every thread the runtime
// starts does.
//
// It names the thread (ps, /proc/PID/task/*/comm and debuggers show
// faultline-uffd, faultline-evict, ...) and calls the hook an embedding
// allocator registered with faultline::set_runtime_thread_hook(). The
// preloaded heap (lib/heap) uses it to keep the runtime's own threads out of
// the memory the runtime serves: a handler thread that allocated from the
// heap it serves could fault on its own allocation and wait for itself.
#pragma once

namespace faultline {

void begin_runtime_thread(const char* name) noexcept;

} // namespace faultline
