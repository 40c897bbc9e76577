// flushkit/pmem/detail/io_op.hpp - per-operation state of pmem_device's async_* calls.
#pragma once

#include <flushkit/core/completion.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

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
/// `recycling_allocator`). Freed before the handler runs.
template <class Handler> class io_op {
public:
  using handler_executor = boost::asio::associated_executor_t<Handler, boost::asio::system_executor>;
  using work_executor = std::decay_t<decltype(boost::asio::prefer(
      std::declval<handler_executor>(), boost::asio::execution::outstanding_work.tracked))>;
  using allocator_type = typename std::allocator_traits<boost::asio::associated_allocator_t<
      Handler, boost::asio::recycling_allocator<void>>>::template rebind_alloc<io_op>;

  /// Builds the op and submits its request through `submit(request&)`. A
  /// buffer sequence longer than `max_io_segments` completes with
  /// `invalid_request` without submitting.
  template <class BufferSequence, class Submit>
  static void start(Handler&& h, req_op op, std::uint64_t offset, const BufferSequence& buffers, req_flags flags,
                    Submit&& submit) {
    allocator_type alloc(boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
    io_op* self = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    ::new (static_cast<void*>(self)) io_op(std::move(h));
    const std::size_t n = to_segments(buffers, self->segments_);
    if (n > max_io_segments) return self->deliver(make_error_code(errc::invalid_request), /*must_post=*/true);
    self->req_.prepare(op, offset, std::span<const segment>(self->segments_.data(), n), flags);
    submit(self->req_);
    if (!self->req_.arm_waiter(&io_op::on_complete, self)) self->deliver(self->req_.result(), /*must_post=*/true);
  }

private:
  explicit io_op(Handler&& h)
      : handler_(std::move(h)),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler_, boost::asio::system_executor()),
                                  boost::asio::execution::outstanding_work.tracked)) {}

  static void on_complete(void* context, const status& st) {
    static_cast<io_op*>(context)->deliver(st, /*must_post=*/false);
  }

  // Frees the op, then hands the handler to its executor (posted when the
  // request completed during initiation, so the handler never runs inline).
  void deliver(status st, bool must_post) {
    Handler h(std::move(handler_));
    work_executor work(std::move(work_));
    allocator_type alloc(boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
    this->~io_op();
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
    if (must_post)
      boost::asio::post(work, boost::asio::append(std::move(h), st));
    else
      boost::asio::dispatch(work, boost::asio::append(std::move(h), st));
  }

  request req_;
  std::array<segment, max_io_segments> segments_{};
  Handler handler_;
  work_executor work_;
};

} // namespace flushkit::pmem::detail
