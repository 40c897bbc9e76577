// Per-operation cancellation: a terminal cancellation detaches the waiter
// with operation_aborted, the request still completes exactly once inside
// flushkit, and a write whose waiter left before its data step never touches
// the caller's buffers.
#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/completion.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/exec/ordered_executor.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include "support/executor_provider.hpp"
#include "support/held_flush_provider.hpp"

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <span>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using flushkit::errc;
using flushkit::req_flags;
using flushkit::status;
using namespace asio::experimental::awaitable_operators;

namespace {

pm::device_options scratch_options() {
  pm::device_options o;
  o.medium = pm::persistence::none;
  return o;
}

using held = flushkit::test::held_async_provider;

/// A device whose provider holds every flush until the test releases it.
struct held_device {
  asio::io_context app;
  held provider;
  std::vector<std::byte> medium = std::vector<std::byte>(4096);
  pm::pmem_device<flushkit::region<held&>> dev{app, std::span(medium), scratch_options(), provider};
  std::array<char, 8> data{'f', 'l', 'u', 's', 'h', 'k', 'i', 't'};
  bool medium_holds_data() const { return std::memcmp(medium.data(), data.data(), data.size()) == 0; }
};

/// Counts handler calls and keeps the last status.
struct handler_log {
  int calls = 0;
  status last{errc::cancelled};
  auto handler() {
    return [this](boost::system::error_code ec) {
      ++calls;
      last = ec;
    };
  }
};

} // namespace

TEST_SUITE("asio/cancellation") {

TEST_CASE("a hung FUA write raced with a timer returns at the timer; the write completes later, once") {
  held_device fx;
  asio::steady_timer timer(fx.app);
  std::size_t winner = 99;
  asio::co_spawn(
      fx.app,
      [&]() -> asio::awaitable<void> {
        timer.expires_after(std::chrono::milliseconds(20));
        auto r = co_await (fx.dev.async_write(0, asio::buffer(fx.data), req_flags::fua, asio::as_tuple(asio::use_awaitable)) ||
                           timer.async_wait(asio::as_tuple(asio::use_awaitable)));
        winner = r.index();
      },
      asio::detached);
  fx.app.run(); // returns at the timer: nothing waits for the held flush any more
  CHECK(winner == 1);
  CHECK(fx.provider.holding());
  CHECK(fx.dev.in_flight() == 1); // the device still owns the request
  CHECK(fx.medium_holds_data());  // a FUA write copies before its flush
  REQUIRE(fx.provider.release());
  CHECK(fx.dev.in_flight() == 0); // completed internally, exactly once
  fx.app.restart();
  CHECK(fx.app.run() == 0); // and nothing is delivered a second time
}

TEST_CASE("terminal cancellation through a bound slot delivers operation_aborted, posted") {
  held_device fx;
  asio::cancellation_signal signal;
  handler_log log;
  fx.dev.async_write(0, asio::buffer(fx.data), req_flags::fua, asio::bind_cancellation_slot(signal.slot(), log.handler()));
  fx.app.poll();
  CHECK(log.calls == 0);
  signal.emit(asio::cancellation_type::terminal);
  CHECK(log.calls == 0); // never inside emit
  fx.app.run();
  CHECK(log.calls == 1);
  CHECK(log.last == asio::error::operation_aborted);
  CHECK(log.last == std::errc::operation_canceled);
  REQUIRE(fx.provider.release());
  fx.app.restart();
  fx.app.run();
  CHECK(log.calls == 1);
  CHECK(fx.dev.in_flight() == 0);
}

TEST_CASE("a write cancelled while its PREFLUSH runs never copies the caller's buffer") {
  held_device fx;
  asio::cancellation_signal signal;
  handler_log log;
  fx.dev.async_write(0, asio::buffer(fx.data), req_flags::preflush | req_flags::fua,
                     asio::bind_cancellation_slot(signal.slot(), log.handler()));
  REQUIRE(fx.provider.holding()); // the PREFLUSH
  signal.emit(asio::cancellation_type::terminal);
  fx.app.run();
  REQUIRE(log.calls == 1);
  CHECK(log.last == asio::error::operation_aborted);
  fx.data.fill('x'); // the buffer is the caller's again
  REQUIRE(fx.provider.release()); // PREFLUSH succeeds; the device finds the segments withdrawn
  CHECK(fx.dev.in_flight() == 0);
  CHECK(fx.provider.calls() == 1); // no FUA flush for a write that never happened
  CHECK(std::all_of(fx.medium.begin(), fx.medium.begin() + 8, [](std::byte b) { return b == std::byte{0}; }));
}

TEST_CASE("partial and total cancellation are not supported and leave the operation running") {
  held_device fx;
  asio::cancellation_signal signal;
  handler_log log;
  fx.dev.async_flush(asio::bind_cancellation_slot(signal.slot(), log.handler()));
  signal.emit(asio::cancellation_type::partial);
  signal.emit(asio::cancellation_type::total);
  fx.app.poll();
  CHECK(log.calls == 0);
  REQUIRE(fx.provider.release(errc::no_space));
  fx.app.run();
  CHECK(log.calls == 1);
  CHECK(log.last == errc::io_error); // the region's policy for a provider failure
}

TEST_CASE("a cancellation after the result was delivered does nothing") {
  held_device fx;
  asio::cancellation_signal signal;
  handler_log log;
  fx.dev.async_flush(asio::bind_cancellation_slot(signal.slot(), log.handler()));
  REQUIRE(fx.provider.release());
  fx.app.run();
  REQUIRE(log.calls == 1);
  signal.emit(asio::cancellation_type::terminal); // the slot was cleared before the handler ran
  fx.app.restart();
  fx.app.run();
  CHECK(log.calls == 1);
  CHECK_FALSE(log.last);
}

TEST_CASE("a cancelled wait on a caller's request leaves the request to complete once, later") {
  asio::io_context app;
  flushkit::request req(flushkit::req_op::flush, 0, {}, req_flags::preflush);
  asio::cancellation_signal signal;
  handler_log log;
  flushkit::async_wait(req, app.get_executor(), asio::bind_cancellation_slot(signal.slot(), log.handler()));
  signal.emit(asio::cancellation_type::terminal);
  app.run();
  CHECK(log.calls == 1);
  CHECK(log.last == asio::error::operation_aborted);
  CHECK_FALSE(req.completed());
  req.complete(errc::io_error); // into the detached wait's block, which is freed now
  CHECK(req.completed());
  app.restart();
  app.run();
  CHECK(log.calls == 1);
}

TEST_CASE("a cancelled coalescer flush still joins its backend flush") {
  asio::io_context app;
  held backend;
  flushkit::coalescer<held&> c(app, backend);
  asio::cancellation_signal signal;
  handler_log log;
  c.async_flush(asio::bind_cancellation_slot(signal.slot(), log.handler()));
  REQUIRE(backend.holding());
  signal.emit(asio::cancellation_type::terminal);
  app.run();
  CHECK(log.last == asio::error::operation_aborted);
  REQUIRE(backend.release());
  CHECK(c.stats().requests_completed == 1);
  CHECK(c.stats().flushes_issued == 1);
  app.restart();
  app.run();
  CHECK(log.calls == 1);
}

TEST_CASE("cancellation racing a completion from another thread delivers exactly one result") {
  constexpr int rounds = 2000;
  asio::io_context app;
  asio::thread_pool pool(1);
  using pool_ex = asio::thread_pool::executor_type;
  flushkit::ordered_executor<pool_ex> flusher(pool.get_executor());
  flushkit::test::executor_provider<pool_ex> provider(flusher);
  std::vector<std::byte> medium(4096);
  pm::pmem_device<flushkit::region<flushkit::test::executor_provider<pool_ex>&>> dev(app, std::span(medium),
                                                                                    scratch_options(), provider);
  std::array<char, 8> data{};
  int calls = 0, aborted = 0, succeeded = 0;
  for (int i = 0; i < rounds; ++i) {
    asio::cancellation_signal signal;
    dev.async_write(0, asio::buffer(data), req_flags::fua,
                    asio::bind_cancellation_slot(signal.slot(), [&](boost::system::error_code ec) {
                      ++calls;
                      if (ec == asio::error::operation_aborted) ++aborted;
                      if (!ec) ++succeeded;
                    }));
    signal.emit(asio::cancellation_type::terminal); // while the pool thread may be completing it
    app.restart();
    app.run();
    while (dev.in_flight() != 0) std::this_thread::yield(); // the internal completion, on the pool thread
  }
  pool.join();
  CHECK(calls == rounds);
  CHECK(aborted + succeeded == rounds);
  CHECK(aborted > 0);
}

TEST_CASE("after a cancelled wait, req.completed() is the point from which the request is the caller's again") {
  // The cancellation disarms the waiter: the later completion calls nothing,
  // and its last touch of the request is the store completed() reads (TSan).
  asio::io_context app;
  int aborted = 0;
  for (int i = 0; i < 500; ++i) {
    auto req = std::make_unique<flushkit::request>(flushkit::req_op::flush, 0, std::span<const flushkit::segment>{},
                                                   req_flags::preflush);
    asio::cancellation_signal signal;
    flushkit::async_wait(*req, app.get_executor(),
                         asio::bind_cancellation_slot(signal.slot(), [&](boost::system::error_code ec) {
                           aborted += ec == asio::error::operation_aborted ? 1 : 0;
                         }));
    signal.emit(asio::cancellation_type::terminal);
    app.restart();
    app.run();
    std::thread completer([&] { req->complete(errc::io_error); });
    while (!req->completed()) std::this_thread::yield();
    req.reset(); // the caller's again
    completer.join();
  }
  CHECK(aborted == 500);
}

TEST_CASE("an io_context destroyed with a strand-bound delivery queued frees the operation once (ASan)") {
  held_device fx_outer; // only for its provider and medium
  auto alive = std::make_shared<int>(0);
  {
    asio::io_context io;
    pm::pmem_device<flushkit::region<held&>> dev(io, std::span(fx_outer.medium), scratch_options(), fx_outer.provider);
    dev.async_write(0, asio::buffer(fx_outer.data), req_flags::fua,
                    asio::bind_executor(asio::make_strand(io), [keep = alive](boost::system::error_code) {}));
    std::thread([&] { REQUIRE(fx_outer.provider.release()); }).join(); // the delivery is queued on the strand
    CHECK(alive.use_count() == 2);
  } // the strand's queued hop and its invoker are destroyed in the services' order
  CHECK(alive.use_count() == 1);
}

TEST_CASE_TEMPLATE("a coalescer may be destroyed by the coroutine its async_flush resumed", OnStrand, std::false_type,
                   std::true_type) {
  asio::io_context io;
  // Plain io_context, or a coroutine on a strand of it (an any_io_executor
  // whose target is a strand: dispatching there from the io thread would run
  // the coroutine inside the coalescer).
  const asio::any_io_executor coroutine_ex =
      OnStrand::value ? asio::any_io_executor(asio::make_strand(io)) : asio::any_io_executor(io.get_executor());
  flushkit::ordered_executor<> backend_ex(io.get_executor());
  flushkit::test::executor_provider<asio::io_context::executor_type> backend(backend_ex);
  bool flushed = false;
  asio::co_spawn(
      coroutine_ex,
      [&]() -> asio::awaitable<void> {
        auto c = std::make_unique<flushkit::coalescer<decltype(backend)&>>(io, backend);
        co_await c->async_flush(); // the backend completes on this io_context's thread
        flushed = true;
      }, // c is destroyed here, after the coalescer left its own code (the handler was posted)
      asio::detached);
  io.run();
  CHECK(flushed);
}

TEST_CASE("a provider that throws fails the write with io_error; nothing leaks out of async_write") {
  struct throwing_provider {
    flushkit::flush_result flush(flushkit::request&) { throw std::runtime_error("the backend exploded"); }
  };
  asio::io_context app;
  throwing_provider p;
  std::vector<std::byte> medium(4096);
  pm::pmem_device<flushkit::region<throwing_provider&>> dev(app, std::span(medium), scratch_options(), p);
  std::array<char, 8> data{};
  handler_log log;
  dev.async_write(0, asio::buffer(data), req_flags::fua, log.handler());
  app.run();
  CHECK(log.calls == 1);
  CHECK(log.last == errc::io_error);
  CHECK(dev.in_flight() == 0);
}

TEST_CASE("a second emit after a cancellation touches nothing") {
  asio::io_context app;
  auto req = std::make_unique<flushkit::request>(flushkit::req_op::flush, 0, std::span<const flushkit::segment>{},
                                                 req_flags::preflush);
  asio::cancellation_signal signal;
  handler_log log;
  flushkit::async_wait(*req, app.get_executor(), asio::bind_cancellation_slot(signal.slot(), log.handler()));
  signal.emit(asio::cancellation_type::terminal);
  req->complete(errc::io_error); // disarmed: calls nothing
  REQUIRE(req->completed());
  req.reset();                                    // (before the aborted handler ran: against the rule, yet safe)
  signal.emit(asio::cancellation_type::terminal); // the handler is still in the slot: it must not touch the request
  app.run();
  CHECK(log.calls == 1);
  CHECK(log.last == asio::error::operation_aborted);
}

TEST_CASE("a delivery destroyed unrun at shutdown does not touch a signal that is already gone (ASan)") {
  held provider;
  std::vector<std::byte> medium(4096);
  std::array<char, 8> data{};
  int calls = 0;
  {
    asio::io_context io;
    asio::cancellation_signal signal; // destroyed before io: the queued delivery must not clear its slot
    pm::pmem_device<flushkit::region<held&>> dev(io, std::span(medium), scratch_options(), provider);
    dev.async_write(0, asio::buffer(data), req_flags::fua,
                    asio::bind_cancellation_slot(signal.slot(), [&calls](boost::system::error_code) { ++calls; }));
    std::thread([&] { REQUIRE(provider.release()); }).join(); // queued on io, never run
  }
  CHECK(calls == 0);
}

} // TEST_SUITE
