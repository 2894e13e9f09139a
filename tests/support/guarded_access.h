// One sigsetjmp helper for tests that expect an access to raise SIGSEGV or
// SIGBUS: guarded_access(fn) runs fn on the calling thread and returns 0 if
// it completed, or the signal that interrupted it. Safe on several threads
// at once (the jump buffer is per thread; the handlers are installed once).
#pragma once

#include <functional>

namespace faultline::testing {

int guarded_access(const std::function<void()>& fn);

} // namespace faultline::testing
