// Zero heap allocations per request in steady state through the coalescer:
// 64 callback loops flushing through region<coalescer<async provider>&>,
// the backend completing on an ordered executor, and the same with a
// synchronous backend; coroutines awaiting async_flush with the default token
// while a thread_pool completes the backend flushes.
#include "support/counting_new.hpp"

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/exec/ordered_executor.hpp>

#include "support/alloc_measure.hpp"
#include "support/executor_provider.hpp"
#include "support/fake_providers.hpp"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cstdint>

namespace asio = boost::asio;
using flushkit::request;
using flushkit::status;
using async_backend = flushkit::test::executor_provider<asio::io_context::executor_type>;

namespace {

constexpr int loops = 64;
constexpr int warmup = 1000;
constexpr int measured = 100000;

/// `loops` requests; each completion submits its request again until
/// `remaining` (shared) runs out.
template <class Target> struct request_loops {
  Target* target;
  int remaining = 0;
  int failures = 0;
  std::array<request, loops> reqs{};

  void start(int n) {
    remaining = n;
    for (request& r : reqs) submit(r);
  }
  void submit(request& r) {
    if (remaining <= 0) return;
    --remaining;
    r.prepare(flushkit::req_op::write, 0, {}, flushkit::req_flags::fua);
    r.on_complete(&request_loops::done, this);
    const flushkit::flush_result res = target->flush(r);
    if (!res.is_async()) r.complete(res.sync_status());
  }
  static void done(void* ctx, request& r, const status& st) {
    auto* self = static_cast<request_loops*>(ctx);
    if (st) ++self->failures;
    self->submit(r);
  }
};

using pool_backend = flushkit::test::executor_provider<asio::thread_pool::executor_type>;
using pool_coalescer = flushkit::coalescer<pool_backend&>;

// `n` request-less flushes awaited with the coalescer's default token.
asio::awaitable<void> flush_loop(pool_coalescer* c, int n, int* failures) {
  for (int i = 0; i < n; ++i) co_await c->async_flush(); // a failure throws: the count is then never set
  static_cast<void>(failures);
}

} // namespace

TEST_CASE("asynchronous backend: 0 allocations over 100000 coalesced requests") {
  asio::io_context io;
  flushkit::ordered_executor<> ex(io.get_executor());
  async_backend p(ex);
  flushkit::coalescer<async_backend&> c(io, p);
  flushkit::region<flushkit::coalescer<async_backend&>&> region(c);
  request_loops<decltype(region)> l{&region};
  l.start(warmup);
  io.run();
  io.restart();
  const std::uint64_t before = c.stats().requests_completed;
  const std::size_t allocs = flushkit::test::allocations_during([&] {
    l.start(measured);
    io.run();
  });
  const flushkit::coalescer_stats s = c.stats();
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(l.failures == 0);
  CHECK(s.requests_completed - before == measured);
  CHECK(s.flushes_per_ack() < 0.1); // 64 requests ride on each flush
  CHECK(ex.slab_fallbacks() == 0);
}

TEST_CASE("synchronous backend: 0 allocations over 100000 coalesced requests") {
  flushkit::test::scripted_sync_provider p;
  asio::io_context io; // the coalescer's executor; nothing runs on it here
  flushkit::coalescer<flushkit::test::scripted_sync_provider&> c(io, p);
  request_loops<decltype(c)> l{&c};
  l.start(warmup);
  const std::size_t allocs = flushkit::test::allocations_during([&] { l.start(measured); });
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(l.failures == 0);
  CHECK(c.stats().requests_completed == warmup + measured);
  const std::size_t sync_allocs = flushkit::test::allocations_during([&] {
    for (int i = 0; i < 1000; ++i) CHECK_FALSE(c.flush_and_wait());
  });
  MESSAGE("allocations per flush_and_wait: ", static_cast<double>(sync_allocs) / 1000, " (sync_allocs = ", sync_allocs, " over ", 1000, ")");
  CHECK(sync_allocs == 0);
}

TEST_CASE("co_await async_flush, backend on a pool thread: 0 allocations over 100000 flushes") {
  asio::io_context io;
  asio::thread_pool pool(1);
  flushkit::ordered_executor<asio::thread_pool::executor_type> ex(pool.get_executor());
  pool_backend p(ex);
  pool_coalescer c(io, p);
  int failures = 0;
  std::size_t allocs = ~std::size_t{0};
  asio::co_spawn(io, flush_loop(&c, warmup, &failures), asio::detached);
  io.run();
  io.restart();
  flushkit::test::warm_pool_strand_cache(pool);
  asio::co_spawn(io, flushkit::test::coroutine_allocations(&flush_loop, &c, measured, &failures, &allocs),
                 asio::detached);
  io.run();
  pool.join();
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(c.stats().requests_completed == warmup + 1 + measured);
}
