// tests/support/violation_capture.hpp - observe contract violations instead of aborting.
#pragma once

#include <flushkit/detail/assert.hpp>

#include <atomic>

namespace flushkit::test {

/// While alive, contract violations are counted instead of aborting.
class violation_capture {
public:
  violation_capture() : previous_(detail::set_violation_handler(&violation_capture::count)) { counter() = 0; }
  ~violation_capture() { detail::set_violation_handler(previous_); }
  violation_capture(const violation_capture&) = delete;
  violation_capture& operator=(const violation_capture&) = delete;

  static int violations() { return counter().load(); }

private:
  static std::atomic<int>& counter() {
    static std::atomic<int> n{0};
    return n;
  }
  static void count(const char*, const char*, int) { ++counter(); }
  detail::violation_handler previous_;
};

/// True when FLUSHKIT_ASSERT is compiled in.
#if defined(NDEBUG) && !defined(FLUSHKIT_ENABLE_ASSERTS)
inline constexpr bool asserts_enabled = false;
#else
inline constexpr bool asserts_enabled = true;
#endif

} // namespace flushkit::test
