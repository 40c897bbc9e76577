// flushkit/version.hpp - library version.
#pragma once

#define FLUSHKIT_VERSION_MAJOR 0
#define FLUSHKIT_VERSION_MINOR 1
#define FLUSHKIT_VERSION_PATCH 0

namespace flushkit {
/// The library version as "major.minor.patch".
inline constexpr const char* version_string = "0.1.0";
} // namespace flushkit
