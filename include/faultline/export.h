// faultline/export.h — what the shared library exports.
//
// libfaultline is built with hidden visibility: only what is marked here is
// part of its ABI, so internal classes can change freely and symbol lookup
// stays cheap for programs that preload it.
#pragma once

#if defined(FAULTLINE_BUILDING_LIBRARY)
#define FAULTLINE_API __attribute__((visibility("default")))
#else
#define FAULTLINE_API
#endif
