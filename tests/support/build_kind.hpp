// tests/support/build_kind.hpp - what kind of build the tests run in.
#pragma once

#include <cstddef>

namespace flushkit::test {

/// True in an ASan or TSan build, where a crash-checker run costs 10-20x a
/// debug build's: the heaviest exhaustive runs take a sample there (the
/// debug and release builds run them whole).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool sanitized_build = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif
#else
inline constexpr bool sanitized_build = false;
#endif

/// The stride over the 625 four-op workloads of an exhaustive run (1: all).
inline constexpr std::size_t exhaustive_stride4 = sanitized_build ? 5 : 1;
/// Random crash trials of a heavy run.
inline constexpr std::size_t heavy_random_trials = sanitized_build ? 100 : 500;

} // namespace flushkit::test
