// flushkit/core/completion.hpp - waiting for a request with any Asio completion token.
#pragma once

#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>

#include <memory>
#include <utility>

namespace flushkit {

/// Completion signature of every flushkit asynchronous operation.
using completion_signature = void(status);

namespace detail {

template <class Handler, class IoExecutor> class wait_op {
public:
  using handler_executor =
      boost::asio::associated_executor_t<Handler, IoExecutor>;
  using work_executor = std::decay_t<decltype(boost::asio::prefer(
      std::declval<handler_executor>(), boost::asio::execution::outstanding_work.tracked))>;
  using allocator_type = typename std::allocator_traits<boost::asio::associated_allocator_t<
      Handler, boost::asio::recycling_allocator<void>>>::template rebind_alloc<wait_op>;

  wait_op(Handler&& h, const IoExecutor& io_ex)
      : handler_(std::move(h)),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler_, io_ex),
                                  boost::asio::execution::outstanding_work.tracked)) {}

  static wait_op* create(Handler&& h, const IoExecutor& io_ex) {
    allocator_type alloc(
        boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
    wait_op* op = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    return ::new (static_cast<void*>(op)) wait_op(std::move(h), io_ex);
  }

  /// Waiter function for completion_slot: runs on the completing thread.
  static void on_complete(void* context, const status& st) {
    static_cast<wait_op*>(context)->deliver(st, /*must_post=*/false);
  }

  /// Frees the op, then hands the handler to its executor. `must_post` is set
  /// when the status was already there at initiation (never complete inline).
  void deliver(const status& st, bool must_post) {
    Handler h(std::move(handler_));
    work_executor work(std::move(work_));
    destroy(h);
    if (must_post)
      boost::asio::post(work, boost::asio::append(std::move(h), st));
    else
      boost::asio::dispatch(work, boost::asio::append(std::move(h), st));
  }

private:
  // `h` is the handler moved out of this op: its allocator frees the op.
  void destroy(const Handler& h) {
    allocator_type alloc(boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
    this->~wait_op();
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
  }

  Handler handler_;
  work_executor work_;
};

template <class IoExecutor> struct initiate_wait {
  using executor_type = IoExecutor;
  IoExecutor io_ex;
  executor_type get_executor() const noexcept { return io_ex; }

  template <class Handler> void operator()(Handler&& h, request* req) const {
    using op_type = wait_op<std::decay_t<Handler>, IoExecutor>;
    op_type* op = op_type::create(std::move(h), io_ex);
    if (!req->arm_waiter(&op_type::on_complete, op)) op->deliver(req->result(), /*must_post=*/true);
  }
};

} // namespace detail

/// Waits for `req` to complete.
///
/// Completion signature: `void(flushkit::status)`; the status is the
/// request's final status (with `use_awaitable`, `co_await` returns it and
/// never throws).
///
/// Executor: the handler's associated executor, defaulting to `io_ex`. When
/// the request completes on another thread the handler is dispatched there;
/// when it had already completed at initiation the handler is posted (never
/// invoked inline). Outstanding work is tracked on that executor until then.
///
/// Ordering and durability: exactly those of the operation that completes the
/// request. At most one waiter per request (callback or token).
///
/// Allocation: one operation node from the handler's associated allocator
/// (default `recycling_allocator`, allocation-free in steady state on threads
/// that run the executor), freed before the handler runs.
template <class IoExecutor,
          boost::asio::completion_token_for<completion_signature> Token>
auto async_wait(request& req, const IoExecutor& io_ex, Token&& token) {
  return boost::asio::async_initiate<Token, completion_signature>(
      detail::initiate_wait<IoExecutor>{io_ex}, token, &req);
}

/// As above, with `boost::asio::system_executor` as the fallback executor: a
/// handler without an associated executor runs on the completing thread.
template <boost::asio::completion_token_for<completion_signature> Token>
auto async_wait(request& req, Token&& token) {
  return async_wait(req, boost::asio::system_executor(), std::forward<Token>(token));
}

} // namespace flushkit
