// flushkit/virtio/eventfd_listener.hpp - waits on an eventfd inside an Asio event loop and calls a target per wake-up.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/core/detail/handler_slab.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/basic_stream_descriptor.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace flushkit::virtio {

/// The receiving end of an `eventfd_notifier`: an eventfd registered with an
/// Asio event loop (`posix::basic_stream_descriptor<Executor>`), read 8 bytes
/// at a time. Each successful read (one or more notifications merged into
/// the counter) calls `target(context)` on `Executor`, then the read is armed
/// again. Typical targets: `pmem_host::kick_entry` (device side: the guest
/// kicked) or the driver's interrupt handler (guest side).
///
/// Completion: `target` runs on the listener's executor, never inline in
/// `start()`. Ordering: one call per read; a notification written while the
/// target runs causes another call (the counter is re-read after re-arming),
/// so none is lost. Allocation: the read operation is allocated from a block
/// embedded in the listener (`handler_fallbacks()` counts any that did not
/// fit, expected 0); `open` may allocate (Asio registers the descriptor).
/// Threading: `open`, `start`, `stop` and the destructor run on the
/// executor's thread (or while the event loop is not running).
/// Shutdown: `stop()` cancels and closes; the pending read then completes
/// with operation_aborted on the event loop and is not re-armed. Destroy the
/// listener before its io_context and only when `armed()` is false (after
/// `stop()`, run the loop until the aborted read has been delivered).
///
/// Read errors: an interrupted or would-block read (EINTR, EAGAIN) is armed
/// again. Any other failure (an error such as EBADF, end of file, or a read
/// of other than 8 bytes) stops the listener as `stop()` does, since later
/// wake-ups could no longer be seen, and is never silent: the status is kept
/// in `error()` and passed to the error callback, if one is set, on the
/// executor. The target is not called for that read.
template <class Executor = boost::asio::io_context::executor_type> class eventfd_listener {
public:
  /// The wake-up target, run on the listener's executor.
  using target_fn = void (*)(void* context);
  /// The error callback, run on the listener's executor once a read error stopped the listener.
  using error_fn = void (*)(void* context, const status& st);

  /// A closed listener on `ex` that will call `fn(context)` per wake-up, and
  /// `on_error(error_context, st)` if a read error stops it (optional, see
  /// `set_error_handler`); `open()` then `start()` it.
  eventfd_listener(const Executor& ex, target_fn fn, void* context, error_fn on_error = nullptr,
                   void* error_context = nullptr)
      : sd_(ex), fn_(fn), context_(context), error_fn_(on_error), error_context_(error_context) {}
  eventfd_listener(const eventfd_listener&) = delete;
  eventfd_listener& operator=(const eventfd_listener&) = delete;
  ~eventfd_listener() { FLUSHKIT_ASSERT(!armed_, "eventfd_listener destroyed with a read pending; stop() and run the loop first"); }

  /// Effects: registers a duplicate of `efd` (the caller keeps its own).
  /// Errors: the system error of dup or of the registration; invalid_request
  /// when already open.
  status open(int efd) {
    if (sd_.is_open()) return errc::invalid_request;
    const int fd = ::fcntl(efd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return {errno, boost::system::generic_category()};
    boost::system::error_code ec;
    sd_.assign(fd, ec);
    if (ec) {
      ::close(fd);
      return {ec.value(), boost::system::generic_category()};
    }
    stopping_ = false;
    error_ = {};
    return {};
  }

  /// Effects: sets (or, with nullptr, removes) the error callback. No allocation.
  /// Executor's thread.
  void set_error_handler(error_fn fn, void* context) noexcept {
    error_fn_ = fn;
    error_context_ = context;
  }

  /// Effects: arms the first read (no effect when not open, stopping or armed).
  void start() {
    if (sd_.is_open() && !stopping_ && !armed_) arm();
  }

  /// Effects: stops listening: cancels the pending read and closes the
  /// descriptor. The target is not called again.
  void stop() {
    stopping_ = true;
    boost::system::error_code ignored;
    sd_.close(ignored);
  }

  /// True while a read is pending: from `start()` until a read completes without
  /// being re-armed (after `stop()`, or on a read error). Executor's thread.
  bool armed() const noexcept { return armed_; }
  /// True between a successful `open()` and `stop()` (or a read error). Executor's thread.
  bool is_open() const noexcept { return sd_.is_open(); }
  /// Target calls so far.
  std::uint64_t wakeups() const noexcept { return wakeups_; }
  /// The read error that stopped the listener: a system error (generic
  /// category), or `errc::io_error` for end of file or a short read; success
  /// while none happened since `open()`. Executor's thread.
  status error() const noexcept { return error_; }
  /// Sum of the counter values read (notifications received, merged or not).
  std::uint64_t notifications() const noexcept { return notifications_; }
  /// Read operations that did not fit the embedded block and were heap-allocated (expected 0).
  std::size_t handler_fallbacks() const noexcept { return slab_.fallbacks(); }

private:
  using slab_type = flushkit::detail::handler_slab<256, 1>;

  struct read_handler {
    eventfd_listener* self;
    void operator()(const boost::system::error_code& ec, std::size_t n) const { self->on_read(ec, n); }
  };

  void arm() {
    armed_ = true;
    sd_.async_read_some(boost::asio::buffer(&value_, sizeof value_),
                        flushkit::detail::in_slab(slab_, read_handler{this}));
  }

  void on_read(const boost::system::error_code& ec, std::size_t n) {
    armed_ = false;
    if (stopping_ || ec == boost::asio::error::operation_aborted) return;
    if (ec == boost::asio::error::interrupted || ec == boost::asio::error::would_block ||
        ec == boost::asio::error::try_again)
      return arm();
    if (ec || n != sizeof value_) return fail(ec);
    ++wakeups_;
    notifications_ += value_;
    fn_(context_);
    if (!stopping_ && sd_.is_open()) arm();
  }

  // A read failed for good: stop, keep the status, tell the error callback.
  void fail(const boost::system::error_code& ec) {
    const bool os_error = ec && (ec.category() == boost::system::system_category() ||
                                 ec.category() == boost::system::generic_category());
    error_ =
        os_error ? status(ec.value(), boost::system::generic_category()) : make_error_code(errc::io_error);
    stop();
    if (error_fn_ != nullptr) error_fn_(error_context_, error_);
  }

  boost::asio::posix::basic_stream_descriptor<Executor> sd_;
  target_fn fn_;
  void* context_;
  error_fn error_fn_;
  void* error_context_;
  status error_{};
  std::uint64_t value_ = 0;
  bool armed_ = false;
  bool stopping_ = false;
  std::uint64_t wakeups_ = 0;
  std::uint64_t notifications_ = 0;
  slab_type slab_;
};

} // namespace flushkit::virtio
