// Zero heap allocations per request in steady state: submit -> ordered
// executor -> complete, through region<> and an asynchronous provider, for the
// callback path and the coroutine path, and for completions that come from
// another thread (the provider's thread pool) back to the coroutine's thread.
#include "support/counting_new.hpp"

#include <flushkit/core/completion.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/exec/ordered_executor.hpp>

#include "support/alloc_measure.hpp"
#include "support/executor_provider.hpp"

#include <doctest/doctest.h>

#include <tuple>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cstddef>

namespace asio = boost::asio;
using flushkit::request;
using flushkit::status;
using io_executor = asio::io_context::executor_type;
using provider = flushkit::test::executor_provider<io_executor>;
using pool_provider = flushkit::test::executor_provider<asio::thread_pool::executor_type>;

namespace {

constexpr int warmup = 1000;
constexpr int measured = 100000;

/// Callback chain: each completion submits the next flush.
struct callback_loop {
  flushkit::region<provider&>* region;
  request req;
  int remaining = 0;
  int failures = 0;

  void submit() {
    req.prepare(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
    req.on_complete(&callback_loop::done, this);
    const flushkit::flush_result r = region->flush(req);
    if (!r.is_async()) req.complete(r.sync_status());
  }
  static void done(void* ctx, request&, const status& st) {
    auto* self = static_cast<callback_loop*>(ctx);
    if (st) ++self->failures;
    if (--self->remaining > 0) self->submit();
  }
};

template <class Provider>
asio::awaitable<void> coroutine_loop(flushkit::region<Provider&>* region, int n, int* failures) {
  request req;
  for (int i = 0; i < n; ++i) {
    req.prepare(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
    const flushkit::flush_result r = region->flush(req);
    status st = r.sync_status();
    if (r.is_async()) std::tie(st) = co_await flushkit::async_wait(req, asio::as_tuple(asio::use_awaitable));
    if (st) ++*failures;
  }
}

} // namespace

TEST_CASE("callback path: 0 allocations over 100000 asynchronous flushes") {
  asio::io_context io;
  flushkit::ordered_executor<> ex(io.get_executor());
  provider p(ex);
  flushkit::region<provider&> region(p);
  callback_loop loop{&region, {}, 0, 0};
  const std::size_t allocs = flushkit::test::chain_allocations(io, loop, warmup, measured);
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(loop.failures == 0);
  CHECK(p.calls == 2 * warmup + measured);
  CHECK(ex.slab_fallbacks() == 0);
}

TEST_CASE("coroutine path: 0 allocations over 100000 awaited asynchronous flushes") {
  asio::io_context io;
  flushkit::ordered_executor<> ex(io.get_executor());
  provider p(ex);
  flushkit::region<provider&> region(p);
  int failures = 0;
  // Warm-up coroutine (frame and handler caches), then the measured one: the
  // measured count starts once the coroutine frame exists.
  asio::co_spawn(io, coroutine_loop(&region, warmup, &failures), asio::detached);
  io.run();
  io.restart();
  std::size_t allocs = 0;
  asio::co_spawn(io,
                 flushkit::test::coroutine_allocations(&coroutine_loop<provider>, &region, measured, &failures, &allocs),
                 asio::detached);
  io.run();
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(failures == 0);
  CHECK(p.calls == warmup + measured + 1);
  CHECK(ex.slab_fallbacks() == 0);
}

TEST_CASE("cross-thread path: 0 allocations when a pool thread completes what a coroutine awaits") {
  asio::io_context io;
  asio::thread_pool pool(1);
  flushkit::ordered_executor<asio::thread_pool::executor_type> ex(pool.get_executor());
  pool_provider p(ex);
  flushkit::region<pool_provider&> region(p);
  int failures = 0;
  asio::co_spawn(io, coroutine_loop(&region, warmup, &failures), asio::detached);
  io.run();
  io.restart();
  flushkit::test::warm_pool_strand_cache(pool);
  std::size_t allocs = 0;
  asio::co_spawn(
      io, flushkit::test::coroutine_allocations(&coroutine_loop<pool_provider>, &region, measured, &failures, &allocs),
      asio::detached);
  io.run();
  ex.drain();
  pool.join();
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(failures == 0);
  CHECK(p.calls == warmup + measured + 1);
  CHECK(ex.slab_fallbacks() == 0);
}
