#include "fault/uffd_fault_port.h"

#include "os/virtual_memory.h"
#include "support/log.h"

#include <csignal>
#include <sys/syscall.h>
#include <unistd.h>

namespace faultline::fault {

bool UffdFaultPort::raise_sigbus(uintptr_t page, int tid, Access access) noexcept
{
    const size_t size = filler_.page_size();
    // Preferred: UFFDIO_POISON marks the page so the retried access raises
    // SIGBUS in exactly the thread that made it (and any other that tries).
    if (use_poison_ && filler_.poison(page, size).ok())
        return true;
    // Without POISON: place an empty file's page over it, which the kernel
    // answers with SIGBUS the same way. The runtime replaces it when the
    // range is unmapped.
    if (os::map_sigbus_page(page, size, int(access), empty_memfd_) == 0)
        return true;
    // Last resort (e.g. the range is sealed): signal the thread directly.
    // It is waiting in the fault, so the signal ends the wait.
    if (tid > 0 && syscall(SYS_tgkill, getpid(), tid, SIGBUS) == 0)
        return true;
    log::error("fault at {:#x}: no way to deliver SIGBUS; the thread will retry the fault", page);
    return false;
}

} // namespace faultline::fault
