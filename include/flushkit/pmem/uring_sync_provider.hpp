// flushkit/pmem/uring_sync_provider.hpp - fdatasync/fsync through io_uring, completed in the caller's Asio loop.
//
// Optional: this header needs liburing (Debian `liburing-dev`) and linking
// with `-luring` (`pkg-config --libs liburing`); the rest of flushkit does not.
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/core/detail/handler_slab.hpp>
#include <flushkit/core/detail/io_object.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/pmem/backing.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/posix/basic_stream_descriptor.hpp>
#include <boost/intrusive/list.hpp>

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>

#include <sys/eventfd.h>
#include <unistd.h>

namespace flushkit::pmem {

/// What `uring_sync_provider` submits.
enum class uring_sync_mode : std::uint8_t {
  fdatasync, ///< `IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC` (data and the metadata needed to read it)
  fsync,     ///< `IORING_OP_FSYNC` (all metadata too)
};

/// Options of a `uring_sync_provider`.
struct uring_options {
  uring_sync_mode mode = uring_sync_mode::fdatasync;
  /// Submission queue entries: flushes in the kernel at once (more are
  /// queued in the provider, without allocation, and submitted as earlier
  /// ones complete). 1..4096.
  unsigned entries = 32;
};

/// An asynchronous flush provider that makes a file's page cache durable
/// with io_uring: `flush(req)` submits `IORING_OP_FSYNC` for the file from
/// the calling thread (one `io_uring_enter`), and the completion is reaped
/// in the application's own Asio event loop, through an eventfd registered
/// with the ring and read by a `posix::basic_stream_descriptor<Executor>`.
/// So a flush crosses no thread flushkit owns: the kernel's io-wq worker
/// runs the fsync, and the loop that submitted it completes it.
///
/// `flush(req)`: returns `async(req)`; the request completes on `Executor`
/// (inside its event loop, never inside `flush`) with success, or the
/// fsync's error as a system status (generic category, e.g. EIO). Returns
/// `done(st)` at once when the ring could not be set up (`usable()`), or
/// after `shutdown()` (`errc::shutting_down`). Durable at success: every
/// store to the file's mapping (and every write to the file) made before
/// `flush(req)` was called, as `fdatasync(2)` (or `fsync(2)`) makes it.
/// Ordering: each flush is a separate fsync; completions run in the order
/// the kernel posts them, which may differ from submission order (a later
/// fsync covers at least what an earlier one covers, so a coalescer in
/// front keeps its epoch rule). Allocation: none after construction (the
/// SQE is the ring's, the eventfd read's handler is in an embedded block,
/// flushes beyond `entries` wait on the request's own intrusive hook).
/// Threads: `flush` may be called from any thread (the submission queue is
/// guarded by a mutex); completions run on `Executor`.
///
/// Setup: the constructor never throws for a kernel without io_uring. It
/// records why the ring could not be made (`io_uring_queue_init` or
/// eventfd registration failing: ENOSYS on old kernels, EPERM where
/// seccomp or `kernel.io_uring_disabled` forbids it, ENOMEM under
/// RLIMIT_MEMLOCK); `usable()` returns that status, a `pmem_device` refuses
/// the combination, and `flush` returns it. `available()` probes without
/// building one, so that a program can pick `offload_provider` instead.
///
/// Capabilities: `durability()` is `page_cache` (the whole file);
/// `usable()` as above.
///
/// Lifetime: the event loop holds work only while a flush is in flight (the
/// eventfd read is armed on demand), so `io_context::run()` returns when
/// the last flush completed. Destroy the provider only when `idle()`, on
/// the executor's thread or when the loop is not running; the file
/// descriptor must outlive it.
template <class Executor = boost::asio::any_io_executor> class uring_sync_provider {
  using hook_type = boost::intrusive::member_hook<request, decltype(request::link_), &request::link_>;
  using request_list = boost::intrusive::list<request, hook_type, boost::intrusive::constant_time_size<true>>;

public:
  using executor_type = Executor;

  /// A provider that syncs `medium`'s file, completing on `ex` (an executor
  /// or an execution context). `medium` must be a file backing that
  /// outlives the provider.
  template <flushkit::detail::executor_source<Executor> ExecutorOrContext>
  uring_sync_provider(ExecutorOrContext&& ex, const backing& medium, uring_options opts = {})
      : uring_sync_provider(std::forward<ExecutorOrContext>(ex), medium.fd(), opts) {}

  /// A provider that syncs the file open as `fd` (not owned).
  template <flushkit::detail::executor_source<Executor> ExecutorOrContext>
  uring_sync_provider(ExecutorOrContext&& ex, int fd, uring_options opts = {})
      : wake_(flushkit::detail::to_executor<Executor>(std::forward<ExecutorOrContext>(ex))), fd_(fd),
        fsync_flags_(opts.mode == uring_sync_mode::fdatasync ? IORING_FSYNC_DATASYNC : 0u) {
    setup_error_ = set_up(opts);
  }
  uring_sync_provider(const uring_sync_provider&) = delete;
  uring_sync_provider& operator=(const uring_sync_provider&) = delete;
  ~uring_sync_provider() {
    FLUSHKIT_ASSERT(idle(), "uring_sync_provider destroyed with a flush in flight");
    boost::system::error_code ignored;
    wake_.close(ignored);
    if (ring_ready_) ::io_uring_queue_exit(&ring_);
  }

  /// Whether io_uring can be used here: success, or the status a provider
  /// would report from `usable()`. Allocation: the kernel's, for a 1-entry
  /// ring that is torn down at once.
  [[nodiscard]] static status available() noexcept {
    ::io_uring ring{};
    if (const int rc = ::io_uring_queue_init(1, &ring, 0); rc < 0) return errno_status(-rc);
    ::io_uring_queue_exit(&ring);
    return {};
  }

  /// The executor completions run on.
  executor_type get_executor() noexcept { return wake_.get_executor(); }

  /// Success once the ring is set up; otherwise why it is not (see "Setup").
  status usable() const noexcept { return setup_error_; }
  /// The whole file's page cache.
  static constexpr durability_scope durability() noexcept { return durability_scope::page_cache; }

  /// Submits one fsync for the file (see the class comment).
  flush_result flush(request& r) {
    if (setup_error_) return flush_result::done(setup_error_);
    std::unique_lock lock(mutex_);
    if (stop_reason_) return flush_result::done(stop_reason_);
    ++flushes_;
    if (in_kernel_ >= entries_ || !overflow_.empty()) {
      overflow_.push_back(r); // submitted, in order, when earlier flushes complete
      return flush_result::async(r);
    }
    if (const status st = submit_locked(r)) {
      --flushes_;
      return flush_result::done(st);
    }
    arm_locked();
    return flush_result::async(r);
  }

  /// Rejects later flushes with `errc::shutting_down`; flushes already
  /// submitted or queued still complete. Any thread.
  void shutdown() {
    std::lock_guard lock(mutex_);
    if (!stop_reason_) stop_reason_ = make_error_code(errc::shutting_down);
  }

  /// True when no flush is in flight or queued and no handler is pending.
  bool idle() const {
    std::lock_guard lock(mutex_);
    return in_kernel_ == 0 && overflow_.empty() && !armed_;
  }

  /// Flushes accepted so far (submitted or queued).
  std::uint64_t flushes() const {
    std::lock_guard lock(mutex_);
    return flushes_;
  }

private:
  using slab_type = flushkit::detail::handler_slab<256, 1>;

  struct read_handler {
    uring_sync_provider* self;
    void operator()(const boost::system::error_code& ec, std::size_t) const { self->on_wake(ec); }
  };

  static status errno_status(int e) noexcept { return {e, boost::system::generic_category()}; }

  status set_up(const uring_options& opts) {
    if (opts.entries == 0 || opts.entries > 4096) return make_error_code(errc::invalid_request);
    if (fd_ < 0) return make_error_code(errc::invalid_request);
    if (const int rc = ::io_uring_queue_init(opts.entries, &ring_, 0); rc < 0) return errno_status(-rc);
    ring_ready_ = true;
    entries_ = opts.entries;
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) return errno_status(errno);
    boost::system::error_code ec;
    wake_.assign(efd, ec);
    if (ec) {
      ::close(efd);
      return errno_status(ec.value());
    }
    if (const int rc = ::io_uring_register_eventfd(&ring_, efd); rc < 0) return errno_status(-rc);
    return {};
  }

  /// One fsync SQE for `r`, submitted. Lock held. When `io_uring_enter`
  /// fails (EAGAIN, EBUSY), the SQE is already in the submission queue and
  /// the next submission would send it: it becomes a NOP that completes no
  /// request, and `r` gets the error.
  status submit_locked(request& r) {
    ::io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return make_error_code(errc::no_space); // the queue is full of stand-in NOPs
    ::io_uring_prep_fsync(sqe, fd_, fsync_flags_);
    ::io_uring_sqe_set_data(sqe, &r);
    if (const int rc = ::io_uring_submit(&ring_); rc < 0) {
      ::io_uring_prep_nop(sqe);
      ::io_uring_sqe_set_data(sqe, nullptr);
      return errno_status(-rc);
    }
    ++in_kernel_;
    return {};
  }

  /// Arms the eventfd read unless it is armed. Lock held.
  void arm_locked() {
    if (armed_) return;
    armed_ = true;
    wake_.async_read_some(boost::asio::buffer(&wake_count_, sizeof wake_count_),
                          flushkit::detail::in_slab(slab_, read_handler{this}));
  }

  /// The eventfd was signalled (or its read failed): reap every posted
  /// completion, then re-arm while flushes remain in flight.
  void on_wake(const boost::system::error_code& ec) {
    if (ec && ec != boost::asio::error::interrupted && ec != boost::asio::error::would_block &&
        ec != boost::asio::error::try_again)
      return fail_wait(ec);
    reap();
    std::lock_guard lock(mutex_);
    armed_ = false;
    if (in_kernel_ > 0) arm_locked();
  }

  /// Completes every request whose CQE is posted; submits queued ones in
  /// their place. Executor's thread (the CQ has one consumer).
  void reap() {
    for (::io_uring_cqe* cqe = nullptr; ::io_uring_peek_cqe(&ring_, &cqe) == 0;) {
      auto* r = static_cast<request*>(::io_uring_cqe_get_data(cqe));
      const status st = cqe->res < 0 ? errno_status(-cqe->res) : status{};
      ::io_uring_cqe_seen(&ring_, cqe);
      if (r == nullptr) continue; // a NOP standing in for a failed submission
      {
        std::lock_guard lock(mutex_);
        --in_kernel_;
      }
      r->complete(st);
      refill();
    }
  }

  /// Queued flushes take free places in the kernel, oldest first; one whose
  /// submission fails completes with the error and the next is tried.
  void refill() {
    for (;;) {
      std::unique_lock lock(mutex_);
      if (overflow_.empty() || in_kernel_ >= entries_) return;
      request& r = overflow_.front();
      overflow_.pop_front();
      if (const status st = submit_locked(r)) {
        lock.unlock();
        r.complete(st);
      }
    }
  }

  /// The eventfd read failed for good: the completions can no longer be
  /// seen in the loop, so wait for each in-flight one here (blocking the
  /// loop for the fsyncs still running) rather than leave them hanging, and
  /// refuse later flushes with the read's error.
  void fail_wait(const boost::system::error_code& ec) {
    {
      std::lock_guard lock(mutex_);
      stop_reason_ = ec;
    }
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (in_kernel_ == 0) {
          armed_ = false;
          return;
        }
      }
      ::io_uring_cqe* cqe = nullptr;
      if (::io_uring_wait_cqe(&ring_, &cqe) == 0) reap();
    }
  }

  boost::asio::posix::basic_stream_descriptor<Executor> wake_;
  int fd_;
  unsigned fsync_flags_;
  ::io_uring ring_{};
  bool ring_ready_ = false;
  status setup_error_{}; // set by the constructor only

  mutable std::mutex mutex_;
  unsigned entries_ = 0;
  unsigned in_kernel_ = 0;   // SQEs submitted whose CQE was not reaped
  request_list overflow_;    // flushes waiting for a free entry
  bool armed_ = false;       // the eventfd read is pending
  status stop_reason_{};     // why later flushes are refused (shutdown, or a failed eventfd read)
  std::uint64_t flushes_ = 0;
  std::uint64_t wake_count_ = 0;
  slab_type slab_;
};

} // namespace flushkit::pmem
