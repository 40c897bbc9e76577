// flushkit/core/detail/io_object.hpp - what every flushkit I/O object shares: its executor and default token.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/execution/executor.hpp>
#include <boost/asio/execution_context.hpp>

#include <type_traits>
#include <utility>

namespace flushkit::detail {

/// What an I/O object with executor type `Executor` is constructed from: an
/// executor convertible to it, or an execution context (`io_context`,
/// `thread_pool`) whose executor is.
template <class T, class Executor>
concept executor_source =
    std::is_convertible_v<T, Executor> ||
    (std::is_convertible_v<std::remove_reference_t<T>&, boost::asio::execution_context&> &&
     requires(T& ctx) { Executor(ctx.get_executor()); });

template <class Executor, class T> Executor to_executor(T&& source) {
  if constexpr (std::is_convertible_v<T, Executor>)
    return Executor(std::forward<T>(source));
  else
    return Executor(source.get_executor());
}

/// The default completion token of an I/O object: the executor's own
/// (`default_completion_token_t<Executor>`, e.g. `use_awaitable` for an
/// executor made with `use_awaitable_t<>::as_default_on`), else `deferred`,
/// as Asio's own objects default to in later releases: a deferred operation
/// is `co_await`-able and can be launched with any token later.
template <class Executor>
using default_token_t = std::conditional_t<std::is_void_v<boost::asio::default_completion_token_t<Executor>>,
                                           boost::asio::deferred_t, boost::asio::default_completion_token_t<Executor>>;

} // namespace flushkit::detail
