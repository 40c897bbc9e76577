// flushkit/pmem/result.hpp - a value or the status that says why there is none.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/detail/assert.hpp>

#include <optional>
#include <utility>

namespace flushkit::pmem {

/// The outcome of a factory that can fail without throwing: either a `T` or a
/// non-success `status`. A small stand-in for `std::expected` (C++23).
template <class T> class [[nodiscard]] result {
public:
  /// A successful result holding `value`.
  result(T value) noexcept(std::is_nothrow_move_constructible_v<T>) : value_(std::move(value)) {}
  /// A failed result. Precondition: `st` is an error.
  result(status st) noexcept : status_(st) { FLUSHKIT_ASSERT(static_cast<bool>(st), "result built from success"); }

  /// True when the result holds a value.
  bool has_value() const noexcept { return value_.has_value(); }
  /// Same as `has_value()`.
  explicit operator bool() const noexcept { return has_value(); }

  /// The error; success when `has_value()`.
  const status& error() const noexcept { return status_; }

  /// The value. Precondition: `has_value()`.
  T& value() & noexcept { return checked(); }
  /// The value. Precondition: `has_value()`.
  const T& value() const& noexcept { return const_cast<result*>(this)->checked(); }
  /// The value, moved out. Precondition: `has_value()`.
  T&& value() && noexcept { return std::move(checked()); }
  /// Access to the value. Precondition: `has_value()`.
  T* operator->() noexcept { return &checked(); }
  /// The value. Precondition: `has_value()`.
  T& operator*() & noexcept { return checked(); }

private:
  T& checked() noexcept {
    FLUSHKIT_ASSERT(value_.has_value(), "result::value() on an error");
    return *value_;
  }
  std::optional<T> value_;
  status status_;
};

} // namespace flushkit::pmem
