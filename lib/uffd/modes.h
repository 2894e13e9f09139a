// uffd/modes.h — how a range is registered with userfaultfd.
//
// A range can be registered for several reasons at once; each reason makes
// the kernel send one kind of fault:
//   Missing       no page at all (anonymous memory, memfd page not in its cache)
//   WriteProtect  a write to a page installed or marked write-protected
//   Minor         the page is in the memfd's page cache but not mapped here
// Objects declare the modes they need (VMObject::uffd_modes); the runtime
// registers each region's range with them.
#pragma once

#include <cstdint>

namespace faultline::uffd {

enum class Mode : uint8_t {
    None = 0,
    Missing = 1,
    WriteProtect = 2,
    Minor = 4,
};
constexpr Mode operator|(Mode a, Mode b) { return Mode(uint8_t(a) | uint8_t(b)); }
constexpr Mode operator&(Mode a, Mode b) { return Mode(uint8_t(a) & uint8_t(b)); }
constexpr bool has(Mode set, Mode bit) { return (uint8_t(set) & uint8_t(bit)) == uint8_t(bit) && uint8_t(bit) != 0; }

// The kind of a page-fault message, decoded from its flags.
enum class FaultKind : uint8_t {
    Missing,
    WriteProtect,
    Minor,
};

} // namespace faultline::uffd
