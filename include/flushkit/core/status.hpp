// flushkit/core/status.hpp - the flushkit error category and its errno mapping.
#pragma once

#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/error_condition.hpp>
#include <boost/system/generic_category.hpp>
#include <boost/system/system_category.hpp>

#include <cerrno>
#include <string>
#include <system_error>
#include <type_traits>

namespace flushkit {

/// The outcome of a request or a flush, synchronous or asynchronous: Asio's
/// error type, so a completion handler takes `boost::system::error_code`,
/// `use_awaitable` throws `boost::system::system_error` on failure, and
/// `as_tuple` / `redirect_error` hand it over unchanged. A default-constructed
/// status (value 0) means success; anything else says why the operation did
/// not succeed.
///
/// It converts both ways with `std::error_code` (a provider's `flush()`
/// returns `status`, and may build it from a `std::error_code`) and compares equal to a flushkit `errc`, to the matching
/// `std::errc` and `boost::system::errc` conditions, and, converted with
/// `static_cast<std::error_code>`, to the same `std::errc` condition.
using status = boost::system::error_code;

/// Error values of the `flushkit` category. Every value maps to one errno
/// (see `to_errno`) and to one portable condition, so callers may compare a
/// status with `errc::io_error`, `std::errc::io_error` or
/// `boost::system::errc::io_error`.
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

// A Boost.System category (its std::error_category face comes from Boost):
// the fixed id makes every copy of this header-only category, in any shared
// object, compare equal as a Boost category (the std face is per copy). Boost's base has a protected non-virtual destructor
// by design (categories are never deleted through it).
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
#endif
class category_impl final : public boost::system::error_category {
public:
  constexpr category_impl() noexcept : boost::system::error_category(0xF105'4C17'0000'0001ull) {}
  const char* name() const noexcept override { return "flushkit"; }
  std::string message(int value) const override {
    const errc_entry* e = find_errc(value);
    return e ? e->message : "unknown flushkit error";
  }
  boost::system::error_condition default_error_condition(int value) const noexcept override {
    const errc_entry* e = find_errc(value);
    return e ? boost::system::error_condition(static_cast<int>(e->condition), boost::system::generic_category())
             : boost::system::error_condition(value, *this);
  }
};
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

} // namespace detail

/// The `flushkit` error category (a single instance for the whole program).
inline const boost::system::error_category& flushkit_category() noexcept {
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
/// for a flushkit status, the value itself for the generic and system
/// categories (Boost's or the standard library's), and EIO for anything else.
inline int to_errno(const status& st) noexcept {
  if (!st) return 0;
  if (st.category() == flushkit_category()) {
    const detail::errc_entry* e = detail::find_errc(st.value());
    return e ? e->errno_value : EIO;
  }
  const std::error_code sc = static_cast<std::error_code>(st);
  if (st.category() == boost::system::generic_category() || st.category() == boost::system::system_category() ||
      sc.category() == std::generic_category() || sc.category() == std::system_category())
    return sc.value() > 0 ? sc.value() : EIO;
  return EIO;
}

} // namespace flushkit

template <> struct boost::system::is_error_code_enum<flushkit::errc> : std::true_type {};
template <> struct std::is_error_code_enum<flushkit::errc> : std::true_type {};
