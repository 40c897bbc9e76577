// flushkit/core/flush_result.hpp - a provider's answer: a status now, or "I own this request".
#pragma once

#include <flushkit/core/completion.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <utility>

namespace flushkit {

/// Handle to a request whose completion an asynchronous provider now owns
/// (the kernel's NVDIMM_FLUSH_ASYNC). The provider will call
/// `request::complete` exactly once; the handle lets the caller wait for it.
///
/// It is an Asio asynchronous operation: `co_await handle;` inside
/// `boost::asio::awaitable<>` waits for the request (and throws
/// `boost::system::system_error` when it failed), and `handle(token)` /
/// `handle.async_wait(token)` accept any completion token whose handler has
/// an associated executor; `handle.async_wait(executor, token)` any token.
/// Completion signature `void(boost::system::error_code)`; executor,
/// ordering, cancellation and allocation as for `flushkit::async_wait`.
class [[nodiscard]] async_completion {
public:
  /// A handle for `req`, which an asynchronous provider has taken ownership of.
  explicit async_completion(request& req) noexcept : req_(&req) {}

  /// The request the provider will complete.
  request& get_request() const noexcept { return *req_; }

  /// Effects: `flushkit::async_wait(get_request(), token)`.
  template <boost::asio::completion_token_for<completion_signature> Token> auto async_wait(Token&& token) const {
    return flushkit::async_wait(*req_, std::forward<Token>(token));
  }

  /// Effects: `flushkit::async_wait(get_request(), ex, token)`.
  template <class Executor, boost::asio::completion_token_for<completion_signature> Token>
    requires boost::asio::execution::executor<Executor>
  auto async_wait(const Executor& ex, Token&& token) const {
    return flushkit::async_wait(*req_, ex, std::forward<Token>(token));
  }

  /// Same as `async_wait(token)`; makes the handle an Asio asynchronous operation (`co_await handle`).
  template <boost::asio::completion_token_for<completion_signature> Token> auto operator()(Token&& token) const {
    return flushkit::async_wait(*req_, std::forward<Token>(token));
  }

private:
  request* req_;
};

/// What a flush returned: either a synchronous status, or an
/// `async_completion` meaning the provider took ownership of completing the
/// request. There is no third state: an unknown or positive provider value can
/// never be mistaken for "asynchronous".
class [[nodiscard]] flush_result {
public:
  /// Synchronous result (success by default).
  [[nodiscard]] static flush_result done(status st = {}) noexcept { return flush_result(st, nullptr); }
  /// The provider owns completing `req` from now on.
  [[nodiscard]] static flush_result async(request& req) noexcept { return flush_result({}, &req); }

  /// True when the provider took ownership of the request (use `handle()`); false for a synchronous result (use `sync_status()`).
  bool is_async() const noexcept { return async_ != nullptr; }
  /// The synchronous status; success for an asynchronous result.
  const status& sync_status() const noexcept { return status_; }
  /// The asynchronous handle. Precondition: `is_async()`.
  async_completion handle() const noexcept {
    FLUSHKIT_ASSERT(async_ != nullptr, "flush_result::handle on a synchronous result");
    return async_completion(*async_);
  }

private:
  flush_result(status st, request* req) noexcept : status_(st), async_(req) {}
  status status_;
  request* async_;
};

} // namespace flushkit
