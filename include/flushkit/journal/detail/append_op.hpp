// flushkit/journal/detail/append_op.hpp - the operation block of one `journal::async_append`.
#pragma once

#include <flushkit/core/buffers.hpp>
#include <flushkit/core/detail/completion_op.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <utility>

namespace flushkit::journal_detail {

/// One append: the request the journal queues (its `epoch` carries the LSN
/// once the record is staged) and the caller's buffers as segments. The
/// completion is `void(error_code, lsn_t)`. Cancellation withdraws the
/// append only while it still waits for buffer space (`Core::withdraw`).
template <class Handler, class IoExecutor, class Core>
class append_op final
    : public flushkit::detail::completion_op<append_op<Handler, IoExecutor, Core>, Handler, IoExecutor> {
  using base = flushkit::detail::completion_op<append_op<Handler, IoExecutor, Core>, Handler, IoExecutor>;
  friend base;

public:
  /// Builds the op over `buffers`, submits it to `core` and waits for it. A
  /// sequence of more than `max_io_buffers` buffers completes with
  /// `invalid_request` without being submitted.
  template <class BufferSequence>
  static void start(Handler&& h, const IoExecutor& fallback_ex, Core& core, const BufferSequence& buffers) {
    append_op* self = base::create(std::move(h), fallback_ex, core);
    const std::size_t n = flushkit::detail::to_segments(buffers, self->segments_);
    if (n > max_io_buffers) return self->request_done(make_error_code(errc::invalid_request), /*at_initiation=*/true);
    self->req_.prepare(req_op::write, 0, std::span<const segment>(self->segments_.data(), n));
    core.submit(self->req_);
    self->wait_for(self->req_);
  }

private:
  append_op(Handler&& h, const IoExecutor& fallback_ex, Core& core) : base(std::move(h), fallback_ex), core_(&core) {}

  std::uint64_t completion_value() const noexcept { return req_.epoch; }
  template <class H> static void invoke(H&& h, const status& result, std::uint64_t lsn) {
    std::forward<H>(h)(result, lsn);
  }
  flushkit::detail::detach_result detach() noexcept {
    return core_->withdraw(req_) ? flushkit::detail::detach_result::detached
                                 : flushkit::detail::detach_result::too_late;
  }

  Core* core_;
  request req_;
  std::array<segment, max_io_buffers> segments_{};
};

} // namespace flushkit::journal_detail
