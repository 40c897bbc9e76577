// Zero heap allocations per wait in steady state for the other completion
// tokens of async_wait on one thread: a callback handler, `deferred` then a
// callback, and `use_future` with an allocator the caller supplies. The
// future with the default std::allocator is not allocation-free (the
// promise's state and the operation come from std::allocator): its count is
// printed, not asserted.
#include "support/counting_new.hpp"

#include <flushkit/core/completion.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/core/detail/handler_slab.hpp>
#include <flushkit/exec/ordered_executor.hpp>

#include "support/alloc_measure.hpp"
#include "support/executor_provider.hpp"

#include <doctest/doctest.h>

#include <boost/system/system_error.hpp>

#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstddef>
#include <future>
#include <type_traits>

namespace asio = boost::asio;
using flushkit::request;
using flushkit::status;
using io_executor = asio::io_context::executor_type;
using provider = flushkit::test::executor_provider<io_executor>;

namespace {

constexpr int warmup = 1000;
constexpr int measured = 100000;

/// Each completion (a handler of async_wait) submits the next flush.
/// `Deferred`: the wait is first made a deferred operation, then launched
/// with the handler.
template <bool Deferred> struct token_loop {
  flushkit::region<provider&>* region;
  io_executor io_ex;
  request req;
  int remaining = 0;
  int failures = 0;

  void submit() {
    req.prepare(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
    const flushkit::flush_result r = region->flush(req);
    if (!r.is_async()) {
      ++failures;
      return;
    }
    auto handler = [this](const status& st) {
      if (st) ++failures;
      if (--remaining > 0) submit();
    };
    if constexpr (Deferred) {
      auto op = flushkit::async_wait(req, io_ex, asio::deferred);
      std::move(op)(std::move(handler));
    } else {
      flushkit::async_wait(req, io_ex, std::move(handler));
    }
  }
};

/// The allocator a caller binds to `use_future` to keep the heap out: eight
/// 1 KiB blocks (flushkit's own slab, the one its handlers use).
using future_slab = flushkit::detail::handler_slab<1024, 8>;
using slab_allocator = flushkit::detail::slab_allocator<void, future_slab>;

/// `n` flushes, each waited for through a future: initiate, run the
/// io_context until it is out of work, get the status.
template <class Token> int future_waits(asio::io_context& io, flushkit::region<provider&>& region, int n, Token token) {
  int failures = 0;
  request req;
  for (int i = 0; i < n; ++i) {
    req.prepare(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
    const flushkit::flush_result r = region.flush(req);
    if (!r.is_async()) return -1;
    std::future<void> f = flushkit::async_wait(req, io.get_executor(), token);
    io.restart();
    io.run();
    try {
      f.get();
    } catch (const boost::system::system_error&) {
      ++failures;
    }
  }
  return failures;
}

} // namespace

TEST_CASE_TEMPLATE("async_wait with a callback handler, or deferred then a callback: 0 allocations over 100000 waits",
                   Deferred, std::false_type, std::true_type) {
  asio::io_context io;
  flushkit::ordered_executor<> ex(io.get_executor());
  provider p(ex);
  flushkit::region<provider&> region(p);
  token_loop<Deferred::value> loop{&region, io.get_executor(), {}, 0, 0};
  const std::size_t allocs = flushkit::test::chain_allocations(io, loop, warmup, measured);
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(loop.failures == 0);
  CHECK(p.calls == 2 * warmup + measured);
  CHECK(ex.slab_fallbacks() == 0);
}

TEST_CASE("async_wait with use_future and a caller's allocator: 0 allocations over 100000 waits") {
  asio::io_context io;
  flushkit::ordered_executor<> ex(io.get_executor());
  provider p(ex);
  flushkit::region<provider&> region(p);
  future_slab pool;
  const auto token = asio::use_future.rebind(slab_allocator(pool));
  CHECK(future_waits(io, region, warmup, token) == 0);
  int failures = -1;
  const std::size_t allocs =
      flushkit::test::allocations_during([&] { failures = future_waits(io, region, measured, token); });
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(failures == 0);
  CHECK(pool.fallbacks() == 0);
  CHECK(ex.slab_fallbacks() == 0);

  // The default use_future allocates (std::allocator): stated, not hidden.
  const int n = 1000;
  const std::size_t default_allocs =
      flushkit::test::allocations_during([&] { failures = future_waits(io, region, n, asio::use_future); });
  MESSAGE("use_future with std::allocator: allocations per wait: ", static_cast<double>(default_allocs) / n);
  CHECK(failures == 0);
  CHECK(default_allocs > 0);
}
