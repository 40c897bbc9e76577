// fuzz/fuzz_check.hpp - the invariant check shared by the fuzz targets.
//
// A failed invariant prints what failed and traps, so libFuzzer records the
// input as a crash. FK_CHECK_TARGET names the target in the message.
#pragma once

#include <cstdio>

namespace flushkit::fuzz {

inline void check(bool ok, const char* target, const char* what, int line) {
  if (ok) return;
  std::fprintf(stderr, "%s: invariant failed: %s (line %d)\n", target, what, line);
  __builtin_trap();
}

} // namespace flushkit::fuzz

#define FK_CHECK(cond) ::flushkit::fuzz::check(static_cast<bool>(cond), FK_CHECK_TARGET, #cond, __LINE__)
