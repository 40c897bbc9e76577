// flushkit/pmem/detail/io_op.hpp - per-operation state of pmem_device's async_* calls.
#pragma once

#include <flushkit/core/completion.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/detail/completion_op.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace flushkit::pmem::detail {

/// Most buffers one async_read / async_write accepts.
inline constexpr std::size_t max_io_segments = 8;

/// Copies a buffer sequence into `out`; returns the count, or max+1 when it
/// does not fit.
template <class BufferSequence>
std::size_t to_segments(const BufferSequence& buffers, std::array<segment, max_io_segments>& out) noexcept {
  std::size_t n = 0;
  auto end = boost::asio::buffer_sequence_end(buffers);
  for (auto it = boost::asio::buffer_sequence_begin(buffers); it != end; ++it) {
    if (n == max_io_segments) return max_io_segments + 1;
    auto b = *it; // const_buffer or mutable_buffer
    out[n++] = {const_cast<void*>(static_cast<const void*>(b.data())), b.size()};
  }
  return n;
}

/// One asynchronous device operation: the request, its segments and the
/// handler, in one block from the handler's associated allocator (default
/// `recycling_allocator`). Delivery as `flushkit::detail::completion_op`: the
/// completing thread only enqueues a function object from the block's slab;
/// the block is freed on the thread running the handler's executor, just
/// before the handler runs there.
template <class Handler>
class io_op final
    : public flushkit::detail::completion_op<io_op<Handler>, Handler, boost::asio::system_executor, status> {
  using base = flushkit::detail::completion_op<io_op<Handler>, Handler, boost::asio::system_executor, status>;
  friend base;

public:
  /// Builds the op and submits its request through `submit(request&)`. A
  /// buffer sequence longer than `max_io_segments` completes with
  /// `invalid_request` without submitting.
  template <class BufferSequence, class Submit>
  static void start(Handler&& h, req_op op, std::uint64_t offset, const BufferSequence& buffers, req_flags flags,
                    Submit&& submit) {
    io_op* self = base::create(std::move(h), boost::asio::system_executor());
    const std::size_t n = to_segments(buffers, self->segments_);
    if (n > max_io_segments) return self->deliver(make_error_code(errc::invalid_request), /*must_post=*/true);
    self->req_.prepare(op, offset, std::span<const segment>(self->segments_.data(), n), flags);
    submit(self->req_);
    if (!self->req_.arm_waiter(&io_op::on_complete, self)) self->deliver(self->req_.result(), /*must_post=*/true);
  }

private:
  io_op(Handler&& h, const boost::asio::system_executor& fallback_ex) : base(std::move(h), fallback_ex) {}

  static void on_complete(void* context, const status& st) {
    static_cast<io_op*>(context)->deliver(st, /*must_post=*/false);
  }

  request req_;
  std::array<segment, max_io_segments> segments_{};
};

} // namespace flushkit::pmem::detail
