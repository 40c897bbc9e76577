// flushkit/core/completion.hpp - waiting for a request with any Asio completion token.
#pragma once

#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/detail/completion_op.hpp>

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

/// The operation behind `async_wait`: see `detail::completion_op`.
template <class Handler, class IoExecutor>
class wait_op final : public completion_op<wait_op<Handler, IoExecutor>, Handler, IoExecutor, status> {
  using base = completion_op<wait_op<Handler, IoExecutor>, Handler, IoExecutor, status>;
  friend base;

public:
  /// Waiter function for completion_slot: runs on the completing thread.
  static void on_complete(void* context, const status& st) {
    static_cast<wait_op*>(context)->deliver(st, /*must_post=*/false);
  }

private:
  wait_op(Handler&& h, const IoExecutor& fallback_ex) : base(std::move(h), fallback_ex) {}
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
/// the request completes later the handler is dispatched there from the
/// completing thread (inline when that thread already runs the executor);
/// when it had already completed at initiation it is posted (never invoked
/// inside this call). Outstanding work is tracked on that executor until then.
///
/// Ordering and durability: exactly those of the operation that completes the
/// request. At most one waiter per request (callback or token).
///
/// Allocation: one operation block (handler, tracked executor, a 2 x 128-byte
/// slab) from the handler's associated allocator, default
/// `recycling_allocator`, whose cache is per thread; the initiating thread
/// allocates it. The completing thread allocates and frees nothing: it hands
/// the handler's executor a function object whose memory is the block's slab;
/// that function frees the block with the handler's allocator on the thread
/// running the handler's executor, then invokes the handler. So when the
/// waiter initiates on a thread that runs its handler's executor (a
/// coroutine, a callback bound to an `io_context` or `thread_pool` executor),
/// the block goes back to the cache it came from and a wait is free of heap
/// allocations in steady state, whichever thread completes the request
/// (tests/alloc/core_zero_alloc.cpp counts the whole allocation family).
/// Not so in three cases: the initiating thread does not run the handler's
/// executor (e.g. a handler without one, which runs on `system_executor`:
/// its block is freed on the completing thread, a cache miss for the
/// initiator); the handler's executor is a type-erased executor
/// (`any_io_executor`, ...) whose target is not an `io_context` or
/// `thread_pool` executor (those targets are unwrapped; any other goes through
/// `any_executor::execute`, which allocates an `executor_function` on the
/// completing thread); an executor whose `execute` ignores the function's
/// allocator. See `detail::completion_op`.
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
