// flushkit/core/completion.hpp - waiting for a request with any Asio completion token.
#pragma once

#include <flushkit/core/detail/completion_op.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/system/error_code.hpp>

#include <type_traits>
#include <utility>

namespace flushkit {

/// Completion signature of every flushkit asynchronous operation (Asio's
/// convention: `status` is `boost::system::error_code`).
using completion_signature = void(boost::system::error_code);

namespace detail {

template <class IoExecutor> struct initiate_wait {
  using executor_type = IoExecutor;
  IoExecutor fallback_ex;
  executor_type get_executor() const noexcept { return fallback_ex; }

  template <class Handler> void operator()(Handler&& h, request* req) const {
    using op_type = wait_op<std::decay_t<Handler>, IoExecutor>;
    op_type::create(std::move(h), fallback_ex, *req)->wait_for(*req);
  }
};

// The executor-less form: the handler must bring its own executor.
struct initiate_wait_bound {
  template <class Handler> void operator()(Handler&& h, request* req) const {
    static_assert(has_associated_executor<std::decay_t<Handler>>,
                  "flushkit::async_wait(req, token): the completion handler has no associated executor, so "
                  "nothing says where it may run. Pass one: async_wait(req, executor, token), or bind it "
                  "with boost::asio::bind_executor (use_awaitable and co_spawn handlers already have one).");
    using executor = boost::asio::associated_executor_t<std::decay_t<Handler>>;
    initiate_wait<executor>{boost::asio::get_associated_executor(h)}(std::forward<Handler>(h), req);
  }
};

} // namespace detail

/// Waits for `req` to complete.
///
/// Completion signature: `void(boost::system::error_code)`: the request's
/// final status (`use_awaitable` throws `boost::system::system_error` on
/// failure; `as_tuple(use_awaitable)` returns it).
///
/// Executor: the handler's associated executor, defaulting to `fallback_ex`; never
/// `system_executor` unless the handler is bound there. The result is posted
/// there (dispatched only from a thread known not to run it, which queues
/// it): the handler never runs inside this call, nor inside the component
/// that completed the request - unless it is bound to an executor that runs
/// on the caller (`system_executor`, `use_future`'s). Outstanding work is
/// tracked on that executor until then; its context must outlive the wait.
///
/// Ordering and durability: exactly those of the operation that completes the
/// request. At most one waiter per request (callback or token).
///
/// Cancellation: `terminal` (through the handler's associated cancellation
/// slot) detaches the wait: the request's waiter is disarmed and the handler
/// gets `operation_aborted`, posted. The request itself is not withdrawn: it
/// completes exactly once later, calling nothing; once the aborted handler
/// ran, keep it (and its segments) alive and do not `prepare` it again until
/// `req.completed()`, from which point nothing in flushkit touches it. A
/// cancellation arriving while the completion already runs is refused (the
/// handler gets the result, and the request is the caller's when it runs). What a
/// detached request made durable is unknown to the cancelled waiter: a later
/// flush tells. Other types are ignored.
///
/// Allocation: one operation block (handler, tracked executor, slot, a
/// 2 x 128-byte slab) from the handler's associated allocator, default
/// `recycling_allocator`, whose cache is per thread; the initiating thread
/// allocates it and the thread running the handler's executor frees it just
/// before invoking the handler. The completing thread allocates and frees
/// nothing. So a wait initiated on a thread that runs its handler's executor
/// (a coroutine, a callback bound to an `io_context` or `thread_pool`
/// executor) is free of heap allocations in steady state, whichever thread
/// completes the request (tests/alloc counts the whole allocation family).
/// Not so when: the initiating thread does not run the handler's executor
/// (the block goes back to another thread's cache); the handler's executor
/// is type-erased with a target other than an `io_context` or `thread_pool`
/// executor (`any_executor::execute` allocates); a cancellation slot is
/// connected (Asio's signal allocates its handler memory once per signal).
template <class IoExecutor, boost::asio::completion_token_for<completion_signature> Token>
  requires boost::asio::execution::executor<IoExecutor>
auto async_wait(request& req, const IoExecutor& fallback_ex, Token&& token) {
  return boost::asio::async_initiate<Token, completion_signature>(detail::initiate_wait<IoExecutor>{fallback_ex}, token,
                                                                  &req);
}

/// As above, for a handler that has its own associated executor (a
/// coroutine's, one bound with `bind_executor`): a handler without one does
/// not compile.
template <boost::asio::completion_token_for<completion_signature> Token>
auto async_wait(request& req, Token&& token) {
  return boost::asio::async_initiate<Token, completion_signature>(detail::initiate_wait_bound{}, token, &req);
}

} // namespace flushkit
