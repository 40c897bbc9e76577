// flushkit/detail/assert.hpp - contract checks used inside the library.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace flushkit::detail {

/// Called when a library contract is broken (a request completed twice, a
/// queued work item destroyed, ...). The default prints and aborts; tests may
/// install their own handler to observe violations.
using violation_handler = void (*)(const char* what, const char* file, int line);

[[noreturn]] inline void default_violation(const char* what, const char* file, int line) {
  std::fprintf(stderr, "flushkit: contract violation: %s (%s:%d)\n", what, file, line);
  std::abort();
}

inline std::atomic<violation_handler>& violation_slot() noexcept {
  static std::atomic<violation_handler> slot{&default_violation};
  return slot;
}

inline void report_violation(const char* what, const char* file, int line) {
  violation_slot().load(std::memory_order_acquire)(what, file, line);
}

/// Installs `h` and returns the previous handler.
inline violation_handler set_violation_handler(violation_handler h) noexcept {
  return violation_slot().exchange(h, std::memory_order_acq_rel);
}

} // namespace flushkit::detail

#if defined(NDEBUG) && !defined(FLUSHKIT_ENABLE_ASSERTS)
#define FLUSHKIT_ASSERT(cond, what) static_cast<void>(0)
#else
#define FLUSHKIT_ASSERT(cond, what)                                                              \
  ((cond) ? static_cast<void>(0) : ::flushkit::detail::report_violation(what, __FILE__, __LINE__))
#endif
