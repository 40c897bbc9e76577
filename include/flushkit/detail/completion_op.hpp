// flushkit/detail/completion_op.hpp - how a flushkit operation block reaches its handler.
#pragma once

#include <flushkit/detail/handler_slab.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/thread_pool.hpp>

#include <memory>
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

/// Base of a completion operation `Op` (CRTP): one block from the handler's
/// associated allocator (default `recycling_allocator`) holding `Op`'s state,
/// the handler, tracked work on the handler's associated executor (default
/// `IoExecutor`) and a `hop_slab`.
///
/// Delivery, `deliver(result, must_post)`, may run on any thread and frees
/// nothing: it posts (or dispatches) a function object, allocated in the
/// op's own slab, to the handler's executor. That function runs there, moves
/// the handler out, frees the op with the handler's allocator - on the thread
/// that runs the handler's executor, the thread that allocated the op in
/// steady state, so its recycling cache gets the block back - and invokes the
/// handler. With one waiter thread and one completer thread nothing reaches
/// the heap in steady state: the completer only enqueues a slab block.
template <class Op, class Handler, class IoExecutor, class Result> class completion_op {
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
      return ::new (static_cast<void*>(op)) Op(std::move(h), fallback_ex, std::forward<Args>(args)...);
    } catch (...) {
      std::allocator_traits<allocator_type>::deallocate(alloc, op, 1);
      throw;
    }
  }

  /// Hands `result` to the handler through its executor; from any thread, at
  /// most once. `must_post`: the result was there at initiation, so the
  /// handler must not run inside the initiating function.
  void deliver(Result result, bool must_post) {
    work_executor ex(std::move(work_)); // the hop may free *this before run_on returns
    run_on(ex,
           boost::asio::bind_allocator(slab_allocator<void, hop_slab>(slab_),
                                       hop{static_cast<Op*>(this), std::move(result)}),
           must_post);
  }

protected:
  completion_op(Handler&& h, const IoExecutor& fallback_ex)
      : handler_(std::move(h)),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler_, fallback_ex),
                                  boost::asio::execution::outstanding_work.tracked)) {}
  ~completion_op() = default;

  Handler handler_;

private:
  // Runs on the handler's executor. Owns the op until it runs: an executor
  // that is destroyed with the hop still queued destroys the hop unrun, and
  // the op (with its handler) is freed then, without invoking the handler.
  class hop {
  public:
    hop(Op* op, Result result) noexcept : op_(op), result_(std::move(result)) {}
    hop(hop&& other) noexcept : op_(std::exchange(other.op_, nullptr)), result_(std::move(other.result_)) {}
    hop(const hop&) = delete;
    hop& operator=(const hop&) = delete;
    hop& operator=(hop&&) = delete;
    ~hop() {
      if (op_ != nullptr) {
        Handler h(std::move(op_->handler_));
        free_op(std::exchange(op_, nullptr), h);
      }
    }

    void operator()() {
      Handler h(std::move(op_->handler_));
      free_op(std::exchange(op_, nullptr), h);
      std::move(h)(std::move(result_));
    }

  private:
    Op* op_;
    Result result_;
  };

  // `h` is the handler moved out of `op`: its allocator frees the op.
  static void free_op(Op* op, const Handler& h) noexcept {
    allocator_type alloc(boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
    op->~Op();
    std::allocator_traits<allocator_type>::deallocate(alloc, op, 1);
  }

  work_executor work_;
  hop_slab slab_;
};

} // namespace flushkit::detail
