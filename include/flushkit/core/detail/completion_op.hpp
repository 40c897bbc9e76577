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
#include <boost/asio/execution/context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/thread_pool.hpp>

#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
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

/// Calls `f` with the concrete executor inside the type-erased `ex` when
/// its target is one of the known ones: an io_context or thread_pool
/// executor (outstanding work tracked or not), or a strand of one. Returns
/// whether it did.
template <type_erased_executor Executor, class Function> bool visit_known_target(const Executor& ex, Function&& f) {
  using io_strand = boost::asio::strand<unwrapped_io_executor>;
  using pool_strand = boost::asio::strand<unwrapped_pool_executor>;
  if (const auto* t = ex.template target<tracked_t<unwrapped_io_executor>>()) return f(*t), true;
  if (const auto* t = ex.template target<unwrapped_io_executor>()) return f(*t), true;
  if (const auto* t = ex.template target<tracked_t<unwrapped_pool_executor>>()) return f(*t), true;
  if (const auto* t = ex.template target<unwrapped_pool_executor>()) return f(*t), true;
  if (const auto* t = ex.template target<io_strand>()) return f(*t), true;
  if (const auto* t = ex.template target<pool_strand>()) return f(*t), true;
  return false;
}

/// Whether the calling thread runs `ex` - or the executor under it (a
/// strand's, whose dispatch would run inline there): empty when `ex` cannot
/// tell (a type-erased executor whose target is not a known one).
template <class Executor> std::optional<bool> runs_in_this_thread(const Executor& ex) noexcept {
  if constexpr (type_erased_executor<Executor>) {
    std::optional<bool> result;
    visit_known_target(ex, [&result](const auto& target) { result = runs_in_this_thread(target); });
    return result;
  } else if constexpr (requires { ex.running_in_this_thread(); }) {
    if (ex.running_in_this_thread()) return true;
    if constexpr (requires { ex.get_inner_executor(); })
      return runs_in_this_thread(ex.get_inner_executor());
    else
      return false;
  } else {
    return std::nullopt;
  }
}

/// True for an executor that runs what it is given on the calling thread by
/// design (`system_executor`, `use_future`'s promise executor): dispatching
/// to it is what the handler asked for.
template <class Executor> struct runs_on_caller_impl : std::false_type {};
template <class Blocking, class Relationship, class Allocator>
struct runs_on_caller_impl<boost::asio::basic_system_executor<Blocking, Relationship, Allocator>> : std::true_type {};
template <class T, class Blocking>
struct runs_on_caller_impl<boost::asio::detail::promise_executor<T, Blocking>> : std::true_type {};
template <class Executor>
concept runs_on_caller = runs_on_caller_impl<std::decay_t<Executor>>::value;

/// Runs `f` on `ex`: dispatched - inline only for an executor that runs
/// everything on the caller (`runs_on_caller`), queued otherwise - when the
/// calling thread is known not to run `ex`; posted in every other case and
/// when `must_post`, so `f` never runs inside the caller's code unless the
/// handler asked for that. `f`'s memory comes from its associated allocator,
/// which `post` / `dispatch` hand to a concrete executor.
///
/// A type-erased executor drops that allocator (`any_executor::execute` wraps
/// the function in an `executor_function` from the calling thread's recycling
/// cache, freed on the executor's thread: a miss on every cross-thread
/// completion). So an `any_io_executor` whose target is an `io_context` or
/// `thread_pool` executor, or a strand of one - what `use_awaitable`,
/// `co_spawn` and `any_io_executor` users hold - is unwrapped and `f` goes to
/// the target. Any other target goes through the wrapper, is always posted,
/// and may allocate there.
template <class Executor, class Function> void run_on(const Executor& ex, Function&& f, bool must_post) {
  if constexpr (type_erased_executor<Executor>) {
    if (visit_known_target(ex, [&](const auto& target) { run_on(target, std::forward<Function>(f), must_post); }))
      return;
  }
  bool dispatch = false;
  if constexpr (runs_on_caller<Executor>)
    dispatch = !must_post;
  else
    dispatch = !must_post && runs_in_this_thread(ex) == std::optional<bool>(false);
  if (dispatch)
    boost::asio::dispatch(ex, std::forward<Function>(f));
  else
    boost::asio::post(ex, std::forward<Function>(f));
}

/// True when `Handler` has an associated executor of its own (bound with
/// `bind_executor`, a coroutine's, a strand's ...).
template <class Handler>
inline constexpr bool has_associated_executor =
    !std::is_same_v<boost::asio::associated_executor_t<Handler, unwrapped_io_executor>, unwrapped_io_executor> ||
    !std::is_same_v<boost::asio::associated_executor_t<Handler, unwrapped_pool_executor>, unwrapped_pool_executor>;

/// The result a detached (cancelled) waiter receives.
inline status aborted() noexcept { return boost::asio::error::operation_aborted; }

/// How a cancelled operation lets go of its request (`Op::detach()`).
enum class detach_result : std::uint8_t {
  too_late, ///< the request is completing now: the cancellation is refused, its result is delivered
  detached, ///< the request will never call the operation again (a caller's request, disarmed)
  bound,    ///< the request still completes into the operation later (it owns the request)
};

/// Base of a completion operation `Op` (CRTP) waiting for one request: one
/// block from the handler's associated allocator (default
/// `recycling_allocator`) holding `Op`'s state, the handler, tracked work on
/// the handler's associated executor (default `IoExecutor`, the I/O object's
/// executor), the handler's cancellation slot and a `hop_slab`.
///
/// Lifetime: a reference count over everything that may still touch the
/// block - the request's pending completion, the delivery, and each `hop_slab`
/// block an executor holds (a strand keeps two: its queued operation and its
/// invoker, and frees them in its own order, also when it is destroyed with
/// them queued). The last release frees the block with the handler's
/// allocator.
///
/// Delivery may run on any thread and frees nothing there: it hands a
/// function object (the hop), allocated in the op's own slab, to the
/// handler's executor - posted when the result is known at initiation or the
/// delivering thread runs that executor, so a handler never runs inside the
/// initiating function nor inside the component that completed the request
/// on its own thread (which the handler may then destroy). The hop clears the
/// cancellation slot, moves the handler out, releases the delivery's
/// references - in steady state the block is then freed on the thread that
/// runs the handler's executor, the thread that allocated it, so its
/// recycling cache gets it back - and invokes the handler. With one waiter
/// thread and one completer thread nothing reaches the heap in steady state:
/// the completer only enqueues a slab block.
///
/// Cancellation: a `terminal` cancellation emitted on the handler's slot
/// before the request completed delivers `operation_aborted`. `Op::detach()`
/// says how the op lets go of the request; for one it owns, `Op::withdraw()`
/// then makes sure nothing touches the caller's memory any more, and the
/// request still completes exactly once internally, into this block. Other
/// cancellation types are ignored.
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
    if (!req.arm_waiter(&completion_op::on_request_done, this)) request_done(req.result(), /*at_initiation=*/true);
  }

  /// The request completed with `st` (from any thread, once): delivers `st`
  /// unless a cancellation delivered first.
  void request_done(const status& st, bool at_initiation) {
    if (claim()) return deliver(st, /*refs=*/2, at_initiation);
    release(1);
  }

protected:
  completion_op(Handler&& h, const IoExecutor& fallback_ex)
      : handler_(std::move(h)),
        alloc_(boost::asio::get_associated_allocator(handler_, boost::asio::recycling_allocator<void>())),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler_, fallback_ex),
                                  boost::asio::execution::outstanding_work.tracked)),
        slot_(boost::asio::get_associated_cancellation_slot(handler_)) {}
  ~completion_op() = default;

  /// Default: the op owns its request (see `detach_result::bound`).
  detach_result detach() noexcept { return detach_result::bound; }
  /// Default: the op uses no caller memory once the request was submitted.
  void withdraw() noexcept {}
  /// Default: the completion carries the status alone. An op whose
  /// signature is `void(error_code, std::uint64_t)` returns the value here
  /// (read when the result is delivered) and defines `invoke` to pass it.
  std::uint64_t completion_value() const noexcept { return 0; }
  /// Invokes the handler with the delivered result (`value` from `completion_value()`).
  template <class H> static void invoke(H&& h, const status& result, std::uint64_t /*value*/) {
    std::forward<H>(h)(result);
  }

  Handler handler_;

private:
  using cancellation_slot_type = boost::asio::associated_cancellation_slot_t<Handler>;

  struct cancel_handler {
    completion_op* op;
    void operator()(boost::asio::cancellation_type_t type) const { op->cancel(type); }
  };

  // The hop's memory: blocks of the op's slab, each holding a reference to
  // the op until the executor gives it back.
  template <class T> class block_allocator {
  public:
    using value_type = T;
    template <class U> struct rebind {
      using other = block_allocator<U>;
    };
    explicit block_allocator(completion_op* op) noexcept : op_(op) {}
    template <class U> block_allocator(const block_allocator<U>& other) noexcept : op_(other.op()) {}
    T* allocate(std::size_t n) {
      op_->refs_.fetch_add(1, std::memory_order_relaxed);
      return static_cast<T*>(op_->slab_.allocate(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t) noexcept {
      completion_op* op = op_;
      op->slab_.deallocate(p);
      op->release(1);
    }
    completion_op* op() const noexcept { return op_; }
    template <class U> bool operator==(const block_allocator<U>& o) const noexcept { return op_ == o.op(); }

  private:
    completion_op* op_;
  };

  // Runs on the handler's executor. Owns `refs` references to the op until it
  // runs: an executor destroyed with the hop still queued destroys the hop
  // unrun, and the handler is destroyed then, without being invoked.
  class hop {
  public:
    hop(Op* op, status result, unsigned refs) noexcept
        : op_(op), result_(result), value_(op->completion_value()), refs_(refs) {}
    hop(hop&& other) noexcept
        : op_(std::exchange(other.op_, nullptr)), result_(other.result_), value_(other.value_), refs_(other.refs_) {}
    hop(const hop&) = delete;
    hop& operator=(const hop&) = delete;
    hop& operator=(hop&&) = delete;
    // Destroyed unrun (its executor shut down): the signal may be gone
    // already, so the slot is not touched; the handler, and with it any
    // signal it owns, is destroyed.
    ~hop() {
      if (op_ != nullptr) static_cast<void>(take_handler(/*clear_slot=*/false));
    }

    void operator()() {
      Handler h = take_handler(/*clear_slot=*/true);
      Op::invoke(std::move(h), result_, value_);
    }

  private:
    Handler take_handler(bool clear_slot) {
      completion_op* op = std::exchange(op_, nullptr);
      if (clear_slot) op->disconnect_cancellation(); // before the handler, which may reuse the signal, runs
      Handler h(std::move(op->handler_));
      op->release(refs_);
      return h;
    }

    Op* op_;
    status result_;
    std::uint64_t value_;
    unsigned refs_;
  };

  static void on_request_done(void* context, const status& st) {
    static_cast<completion_op*>(context)->request_done(st, /*at_initiation=*/false);
  }

  void connect_cancellation() {
    if constexpr (std::is_same_v<cancellation_slot_type, boost::asio::cancellation_slot>)
      if (slot_.is_connected()) slot_.template emplace<cancel_handler>(cancel_handler{this});
  }
  void disconnect_cancellation() noexcept {
    if constexpr (std::is_same_v<cancellation_slot_type, boost::asio::cancellation_slot>)
      if (slot_.is_connected()) slot_.clear();
  }

  bool claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }

  void cancel(boost::asio::cancellation_type_t type) {
    if ((type & boost::asio::cancellation_type::terminal) == boost::asio::cancellation_type::none) return;
    if (claimed_.load(std::memory_order_acquire)) return; // delivered, or cancelled already: touch nothing
    const detach_result d = static_cast<Op*>(this)->detach();
    if (d == detach_result::too_late) return; // the result is on its way
    if (!claim()) return;                     // delivered already
    if (d == detach_result::bound) static_cast<Op*>(this)->withdraw();
    deliver(aborted(), d == detach_result::detached ? 2 : 1, /*must_post=*/true);
  }

  void deliver(const status& result, unsigned refs, bool must_post) {
    work_executor ex(std::move(work_)); // the hop may free *this before run_on returns
    run_on(ex, boost::asio::bind_allocator(block_allocator<void>(this), hop{static_cast<Op*>(this), result, refs}),
           must_post);
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
  std::atomic<std::uint8_t> refs_{2}; // the request's completion + the delivery (+ each hop block in use)
  hop_slab slab_;
};

/// The operation behind a wait for a caller-owned request. A cancellation
/// disarms the request's waiter, so the request never calls the operation
/// again and `request::completed()` then says when the caller may reuse it.
template <class Handler, class IoExecutor>
class wait_op final : public completion_op<wait_op<Handler, IoExecutor>, Handler, IoExecutor> {
  using base = completion_op<wait_op<Handler, IoExecutor>, Handler, IoExecutor>;
  friend base;

  wait_op(Handler&& h, const IoExecutor& fallback_ex, request& req) : base(std::move(h), fallback_ex), req_(&req) {}

  detach_result detach() noexcept {
    return req_->disarm_waiter() ? detach_result::detached : detach_result::too_late;
  }

  request* req_;
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
    if (n > max_io_buffers) return self->request_done(make_error_code(errc::invalid_request), /*at_initiation=*/true);
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
