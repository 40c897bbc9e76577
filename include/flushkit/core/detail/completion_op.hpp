// flushkit/core/detail/completion_op.hpp - the one completion-operation core of every flushkit async operation.
#pragma once

#include <flushkit/core/buffers.hpp>
#include <flushkit/core/detail/handler_slab.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/thread_pool.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>

namespace flushkit::detail {

/// Storage, inside an operation block, for the function object that carries
/// the operation to its handler's executor: a strand needs two blocks (its
/// queued operation and the invoker it posts), every other executor one.
using hop_slab = handler_slab<128, 2>;

/// A polymorphic executor (`any_io_executor`, `execution::any_executor<...>`).
template <class Executor>
concept type_erased_executor = requires(const Executor& ex) {
  ex.template target<boost::asio::io_context::executor_type>();
};

template <class Executor>
using tracked_t = std::decay_t<decltype(boost::asio::prefer(std::declval<Executor>(),
                                                             boost::asio::execution::outstanding_work.tracked))>;

/// The concrete targets `run_on` looks for inside a type-erased executor
/// (each also with outstanding work tracked).
using unwrapped_io_executor = boost::asio::io_context::executor_type;
using unwrapped_pool_executor = boost::asio::thread_pool::executor_type;

/// Runs `f` on `ex`: `post` when `must_post`, else `dispatch` (inline when the
/// calling thread already runs `ex`). `f`'s memory comes from its associated
/// allocator, which `post`/`dispatch` hand to a concrete executor.
///
/// A type-erased executor drops that allocator (`any_executor::execute` wraps
/// the function in an `executor_function` from the calling thread's recycling
/// cache, freed on the executor's thread: a miss on every cross-thread
/// completion). So an `any_io_executor` whose target is an `io_context` or
/// `thread_pool` executor - what `use_awaitable`, `co_spawn` and
/// `any_io_executor` users hold - is unwrapped and `f` goes to the target.
/// Any other target goes through the wrapper and may allocate there.
template <class Executor, class Function> void run_on(const Executor& ex, Function&& f, bool must_post) {
  if constexpr (type_erased_executor<Executor>) {
    if (const auto* t = ex.template target<tracked_t<unwrapped_io_executor>>()) return run_on(*t, std::forward<Function>(f), must_post);
    if (const auto* t = ex.template target<unwrapped_io_executor>()) return run_on(*t, std::forward<Function>(f), must_post);
    if (const auto* t = ex.template target<tracked_t<unwrapped_pool_executor>>())
      return run_on(*t, std::forward<Function>(f), must_post);
    if (const auto* t = ex.template target<unwrapped_pool_executor>()) return run_on(*t, std::forward<Function>(f), must_post);
  }
  if (must_post)
    boost::asio::post(ex, std::forward<Function>(f));
  else
    boost::asio::dispatch(ex, std::forward<Function>(f));
}

/// True when `Handler` has an associated executor of its own (bound with
/// `bind_executor`, a coroutine's, a strand's ...).
template <class Handler>
inline constexpr bool has_associated_executor =
    !std::is_same_v<boost::asio::associated_executor_t<Handler, unwrapped_io_executor>, unwrapped_io_executor> ||
    !std::is_same_v<boost::asio::associated_executor_t<Handler, unwrapped_pool_executor>, unwrapped_pool_executor>;

/// The result a detached (cancelled) waiter receives.
inline status aborted() noexcept { return boost::asio::error::operation_aborted; }

/// Base of a completion operation `Op` (CRTP) waiting for one request: one
/// block from the handler's associated allocator (default
/// `recycling_allocator`) holding `Op`'s state, the handler, tracked work on
/// the handler's associated executor (default `IoExecutor`, the I/O object's
/// executor), the handler's cancellation slot and a `hop_slab`.
///
/// Two events end the op, in either order: the request's completion
/// (`request_done`) and the delivery to the handler. Whichever of the
/// request's completion and a terminal cancellation comes first claims the
/// delivery; the block is freed when both ended.
///
/// Delivery may run on any thread and frees nothing there: it posts (or
/// dispatches) a function object, allocated in the op's own slab, to the
/// handler's executor. That function clears the cancellation slot, moves the
/// handler out, frees the block with the handler's allocator - on the thread
/// that runs the handler's executor, the thread that allocated the block in
/// steady state, so its recycling cache gets the block back - and invokes the
/// handler. With one waiter thread and one completer thread nothing reaches
/// the heap in steady state: the completer only enqueues a slab block.
///
/// Cancellation: a `terminal` cancellation emitted on the handler's slot
/// before the request completed delivers `operation_aborted` (always posted);
/// `Op::withdraw()` first makes sure nothing touches the caller's memory any
/// more. The request still completes exactly once internally, into this
/// block, which lives until then. Other cancellation types are ignored.
template <class Op, class Handler, class IoExecutor> class completion_op {
public:
  using handler_type = Handler;
  using handler_executor = boost::asio::associated_executor_t<Handler, IoExecutor>;
  using work_executor = tracked_t<handler_executor>;
  using allocator_type = typename std::allocator_traits<
      boost::asio::associated_allocator_t<Handler, boost::asio::recycling_allocator<void>>>::template rebind_alloc<Op>;

  completion_op(const completion_op&) = delete;
  completion_op& operator=(const completion_op&) = delete;

  /// Allocates `Op` with the handler's allocator and constructs it from
  /// `(std::move(h), fallback_ex, args...)`.
  template <class... Args> static Op* create(Handler&& h, const IoExecutor& fallback_ex, Args&&... args) {
    allocator_type alloc(boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
    Op* op = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    try {
      ::new (static_cast<void*>(op)) Op(std::move(h), fallback_ex, std::forward<Args>(args)...);
    } catch (...) {
      std::allocator_traits<allocator_type>::deallocate(alloc, op, 1);
      throw;
    }
    op->connect_cancellation();
    return op;
  }

  /// Waits for `req`: the op hears of its completion, or, if it already
  /// completed, delivers its result now (posted: never inside the initiating
  /// function).
  void wait_for(request& req) {
    if (!req.arm_waiter(&completion_op::on_request_done, this)) request_done(req.result(), /*must_post=*/true);
  }

  /// The request completed with `st` (from any thread, once): delivers `st`
  /// unless a cancellation delivered first.
  void request_done(const status& st, bool must_post) {
    if (claim()) return deliver(st, must_post, /*refs=*/2);
    release(1);
  }

protected:
  completion_op(Handler&& h, const IoExecutor& fallback_ex)
      : handler_(std::move(h)), alloc_(boost::asio::get_associated_allocator(handler_, boost::asio::recycling_allocator<void>())),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler_, fallback_ex),
                                  boost::asio::execution::outstanding_work.tracked)),
        slot_(boost::asio::get_associated_cancellation_slot(handler_)) {}
  ~completion_op() = default;

  /// Default: the op uses no caller memory once the request was submitted.
  void withdraw() noexcept {}

  Handler handler_;

private:
  using cancellation_slot_type = boost::asio::associated_cancellation_slot_t<Handler>;

  struct cancel_handler {
    completion_op* op;
    void operator()(boost::asio::cancellation_type_t type) const { op->cancel(type); }
  };

  // Runs on the handler's executor. Owns `refs` references to the op until it
  // runs: an executor destroyed with the hop still queued destroys the hop
  // unrun, and the op (with its handler) is released then, without invoking
  // the handler.
  class hop {
  public:
    hop(Op* op, status result, unsigned refs) noexcept : op_(op), result_(result), refs_(refs) {}
    hop(hop&& other) noexcept : op_(std::exchange(other.op_, nullptr)), result_(other.result_), refs_(other.refs_) {}
    hop(const hop&) = delete;
    hop& operator=(const hop&) = delete;
    hop& operator=(hop&&) = delete;
    ~hop() {
      if (op_ != nullptr) static_cast<void>(take_handler());
    }

    void operator()() {
      Handler h = take_handler();
      std::move(h)(result_);
    }

  private:
    Handler take_handler() {
      completion_op* op = std::exchange(op_, nullptr);
      op->disconnect_cancellation();
      Handler h(std::move(op->handler_));
      op->release(refs_);
      return h;
    }

    Op* op_;
    status result_;
    unsigned refs_;
  };

  static void on_request_done(void* context, const status& st) {
    static_cast<completion_op*>(context)->request_done(st, /*must_post=*/false);
  }

  void connect_cancellation() {
    if constexpr (!std::is_same_v<cancellation_slot_type, boost::asio::cancellation_slot>) return;
    else if (slot_.is_connected())
      slot_.template emplace<cancel_handler>(cancel_handler{this});
  }
  void disconnect_cancellation() noexcept {
    if constexpr (std::is_same_v<cancellation_slot_type, boost::asio::cancellation_slot>)
      if (slot_.is_connected()) slot_.clear();
  }

  bool claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }

  void cancel(boost::asio::cancellation_type_t type) {
    if ((type & boost::asio::cancellation_type::terminal) == boost::asio::cancellation_type::none) return;
    if (!claim()) return; // the result is already on its way
    static_cast<Op*>(this)->withdraw();
    deliver(aborted(), /*must_post=*/true, /*refs=*/1);
  }

  void deliver(const status& result, bool must_post, unsigned refs) {
    work_executor ex(std::move(work_)); // the hop may free *this before run_on returns
    run_on(ex, in_slab(slab_, hop{static_cast<Op*>(this), result, refs}), must_post);
  }

  void release(unsigned n) noexcept {
    if (refs_.fetch_sub(static_cast<std::uint8_t>(n), std::memory_order_acq_rel) != n) return;
    allocator_type alloc(alloc_);
    Op* op = static_cast<Op*>(this);
    op->~Op();
    std::allocator_traits<allocator_type>::deallocate(alloc, op, 1);
  }

  allocator_type alloc_;
  work_executor work_;
  cancellation_slot_type slot_;
  std::atomic<bool> claimed_{false};
  std::atomic<std::uint8_t> refs_{2}; // the request's completion + the delivery
  hop_slab slab_;
};

/// The operation behind a wait for a caller-owned request.
template <class Handler, class IoExecutor>
class wait_op final : public completion_op<wait_op<Handler, IoExecutor>, Handler, IoExecutor> {
  using base = completion_op<wait_op<Handler, IoExecutor>, Handler, IoExecutor>;
  friend base;

  wait_op(Handler&& h, const IoExecutor& fallback_ex) : base(std::move(h), fallback_ex) {}
};

/// An operation that owns its request (and up to `max_io_buffers` segments
/// pointing at the caller's buffers): the block of one `async_write`,
/// `async_read` or `async_flush` of an I/O object.
template <class Handler, class IoExecutor>
class request_op final : public completion_op<request_op<Handler, IoExecutor>, Handler, IoExecutor> {
  using base = completion_op<request_op<Handler, IoExecutor>, Handler, IoExecutor>;
  friend base;

public:
  /// Builds the op, prepares its request for `op` at `offset` over `buffers`
  /// with `flags`, hands it to `submit(request&)` and waits for it. A buffer
  /// sequence longer than `max_io_buffers` completes with `invalid_request`
  /// without submitting.
  template <class BufferSequence, class Submit>
  static void start(Handler&& h, const IoExecutor& fallback_ex, req_op op, std::uint64_t offset,
                    const BufferSequence& buffers, req_flags flags, Submit&& submit) {
    request_op* self = base::create(std::move(h), fallback_ex);
    const std::size_t n = to_segments(buffers, self->segments_);
    if (n > max_io_buffers) return self->request_done(make_error_code(errc::invalid_request), /*must_post=*/true);
    self->req_.prepare(op, offset, std::span<const segment>(self->segments_.data(), n), flags);
    submit(self->req_);
    self->wait_for(self->req_);
  }

private:
  request_op(Handler&& h, const IoExecutor& fallback_ex) : base(std::move(h), fallback_ex) {}

  // The caller's buffers are theirs again once the handler runs.
  void withdraw() noexcept { req_.withdraw_segments(); }

  request req_;
  std::array<segment, max_io_buffers> segments_{};
};

} // namespace flushkit::detail
