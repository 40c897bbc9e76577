// flushkit/core/buffers.hpp - the buffer sequences flushkit's I/O operations take.
#pragma once

#include <flushkit/core/request.hpp>

#include <boost/asio/buffer.hpp>

#include <array>
#include <cstddef>
#include <span>
#include <tuple>
#include <type_traits>

namespace flushkit {

/// Most buffers one flushkit I/O operation (`async_write`, `async_read`)
/// accepts: the operation block holds this many segments, so no sequence
/// length ever allocates.
inline constexpr std::size_t max_io_buffers = 8;

namespace detail {

template <class T> struct static_buffer_count : std::integral_constant<std::size_t, 0> {};
template <class T>
  requires requires { std::tuple_size<T>::value; }
struct static_buffer_count<T> : std::integral_constant<std::size_t, std::tuple_size<T>::value> {};
template <class T, std::size_t N> struct static_buffer_count<T[N]> : std::integral_constant<std::size_t, N> {};
template <class T, std::size_t N>
  requires(N != std::dynamic_extent)
struct static_buffer_count<std::span<T, N>> : std::integral_constant<std::size_t, N> {};

/// The number of buffers in `T` when the type fixes it (an array of
/// buffers, a span of static extent), 0 when only the value knows (a vector, a single buffer counts
/// as one at run time).
template <class T> inline constexpr std::size_t static_buffer_count_v = static_buffer_count<std::remove_cvref_t<T>>::value;

} // namespace detail

/// A buffer sequence a flushkit write takes: an Asio const buffer sequence
/// (`const_buffer`, `mutable_buffer`, a range of them) whose length, when its
/// type fixes it, is at most `max_io_buffers`. A longer sequence whose length
/// only its value knows completes with `invalid_request`.
template <class T>
concept const_buffers = boost::asio::is_const_buffer_sequence<std::remove_cvref_t<T>>::value &&
                        detail::static_buffer_count_v<T> <= max_io_buffers;

/// A buffer sequence a flushkit read fills: as `const_buffers`, of mutable buffers.
template <class T>
concept mutable_buffers = boost::asio::is_mutable_buffer_sequence<std::remove_cvref_t<T>>::value &&
                          detail::static_buffer_count_v<T> <= max_io_buffers;

namespace detail {

/// Copies a buffer sequence into `out`; returns the count, or max+1 when it
/// does not fit.
template <class BufferSequence>
std::size_t to_segments(const BufferSequence& buffers, std::array<segment, max_io_buffers>& out) noexcept {
  std::size_t n = 0;
  auto end = boost::asio::buffer_sequence_end(buffers);
  for (auto it = boost::asio::buffer_sequence_begin(buffers); it != end; ++it) {
    if (n == max_io_buffers) return max_io_buffers + 1;
    auto b = *it; // const_buffer or mutable_buffer
    out[n++] = {const_cast<void*>(static_cast<const void*>(b.data())), b.size()};
  }
  return n;
}

} // namespace detail
} // namespace flushkit
