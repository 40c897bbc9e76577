// flushkit/core/status.hpp - the flushkit error category and its errno mapping.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>
#include <type_traits>

namespace flushkit {

/// The outcome of a request or a flush. A default-constructed status (value 0)
/// means success; anything else says why the operation did not succeed.
using status = std::error_code;

/// Error values of the `flushkit` category. Every value maps to one errno
/// (see `to_errno`) and to one portable `std::errc` condition, so callers may
/// compare a status with either `errc::io_error` or `std::errc::io_error`.
enum class errc : int {
  io_error = 1,    ///< the medium or the device failed; the data may not be durable (EIO)
  no_memory,       ///< a resource could not be obtained; nothing was submitted (ENOMEM)
  no_space,        ///< no free slot or space; retrying later may succeed (ENOSPC)
  device_broken,   ///< the device needs a reset; every request fails until it is reset (ENXIO)
  shutting_down,   ///< the component is draining or shut down; the request was not queued (ESHUTDOWN)
  invalid_request, ///< the request is malformed: bounds, flags or op (EINVAL)
  not_supported,   ///< the operation is not supported by this device or provider (EOPNOTSUPP)
  timeout,         ///< the operation did not finish within its bound (ETIMEDOUT)
  cancelled,       ///< the request was withdrawn before it had any effect (ECANCELED)
};

namespace detail {

struct errc_entry {
  errc value;
  int errno_value;
  std::errc condition;
  const char* message;
};

inline constexpr errc_entry errc_table[] = {
    {errc::io_error, EIO, std::errc::io_error, "input/output error"},
    {errc::no_memory, ENOMEM, std::errc::not_enough_memory, "out of memory"},
    {errc::no_space, ENOSPC, std::errc::no_space_on_device, "no space or free slot"},
    {errc::device_broken, ENXIO, std::errc::no_such_device_or_address, "device broken, needs reset"},
    {errc::shutting_down, ESHUTDOWN, std::errc::operation_not_permitted, "shutting down"},
    {errc::invalid_request, EINVAL, std::errc::invalid_argument, "invalid request"},
    {errc::not_supported, EOPNOTSUPP, std::errc::operation_not_supported, "operation not supported"},
    {errc::timeout, ETIMEDOUT, std::errc::timed_out, "timed out"},
    {errc::cancelled, ECANCELED, std::errc::operation_canceled, "cancelled"},
};

inline const errc_entry* find_errc(int value) noexcept {
  for (const auto& e : errc_table)
    if (static_cast<int>(e.value) == value) return &e;
  return nullptr;
}

class category_impl final : public std::error_category {
public:
  const char* name() const noexcept override { return "flushkit"; }
  std::string message(int value) const override {
    const errc_entry* e = find_errc(value);
    return e ? e->message : "unknown flushkit error";
  }
  std::error_condition default_error_condition(int value) const noexcept override {
    const errc_entry* e = find_errc(value);
    return e ? std::make_error_condition(e->condition) : std::error_condition(value, *this);
  }
};

} // namespace detail

/// The `flushkit` error category (a single instance for the whole program).
inline const std::error_category& flushkit_category() noexcept {
  static const detail::category_impl instance;
  return instance;
}

[[nodiscard]] inline status make_error_code(errc e) noexcept { return {static_cast<int>(e), flushkit_category()}; }

/// Converts an errno value to a status. 0 gives success; the errno values in
/// the table of `errc` give that value; every other errno gives `io_error`
/// (an unknown failure of the medium is reported as a medium failure).
[[nodiscard]] inline status status_from_errno(int err) noexcept {
  if (err == 0) return {};
  for (const auto& e : detail::errc_table)
    if (e.errno_value == err) return make_error_code(e.value);
  if (err == EAGAIN || err == EBUSY) return make_error_code(errc::no_space);
  return make_error_code(errc::io_error);
}

/// Converts a status to a positive errno value: 0 for success, the table value
/// for a flushkit status, the value itself for `std::generic_category` and
/// `std::system_category`, and EIO for anything else.
inline int to_errno(const status& st) noexcept {
  if (!st) return 0;
  if (st.category() == flushkit_category()) {
    const detail::errc_entry* e = detail::find_errc(st.value());
    return e ? e->errno_value : EIO;
  }
  if (st.category() == std::generic_category() || st.category() == std::system_category())
    return st.value() > 0 ? st.value() : EIO;
  return EIO;
}

} // namespace flushkit

template <> struct std::is_error_code_enum<flushkit::errc> : std::true_type {};
