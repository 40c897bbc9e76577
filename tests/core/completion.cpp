#include <flushkit/core/completion.hpp>

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <thread>
#include <tuple>

namespace asio = boost::asio;
using flushkit::errc;
using flushkit::req_op;
using flushkit::request;
using flushkit::status;

namespace {

// use_awaitable: success returns, failure throws boost::system::system_error.
asio::awaitable<void> await_use_awaitable(request& req, status* out) {
  try {
    co_await flushkit::async_wait(req, asio::use_awaitable);
    *out = status{};
  } catch (const boost::system::system_error& e) {
    *out = e.code();
  }
}

asio::awaitable<void> await_deferred(request& req, status* out) {
  try {
    co_await flushkit::async_wait(req, asio::deferred);
    *out = status{};
  } catch (const boost::system::system_error& e) {
    *out = e.code();
  }
}

asio::awaitable<void> await_as_tuple(request& req, status* out) {
  auto [st] = co_await flushkit::async_wait(req, asio::as_tuple(asio::use_awaitable));
  *out = st;
}

/// Spawns `awaiter(req, &seen)` on an io_context, lets it suspend on `req`,
/// completes `req` with `st`, runs the io_context and returns `seen`.
status awaited_status(asio::awaitable<void> (*awaiter)(request&, status*), status st) {
  asio::io_context io;
  request req(req_op::flush, 0, {});
  status seen = errc::cancelled;
  asio::co_spawn(io, awaiter(req, &seen), asio::detached);
  io.poll();
  req.complete(st);
  io.run();
  return seen;
}

} // namespace

TEST_SUITE("core/completion") {

TEST_CASE("a callback token bound to an io_context runs there after completion") {
  asio::io_context io;
  request req(req_op::flush, 0, {});
  status seen = errc::cancelled;
  int calls = 0;
  flushkit::async_wait(req, io.get_executor(), [&](status st) {
    seen = st;
    ++calls;
  });
  CHECK(io.poll() == 0);
  req.complete(errc::io_error);
  io.run();
  CHECK(calls == 1);
  CHECK(seen == errc::io_error);
}

TEST_CASE("a wait started after completion is posted and not run inline") {
  asio::io_context io;
  request req(req_op::flush, 0, {});
  req.complete({});
  int calls = 0;
  flushkit::async_wait(req, io.get_executor(), [&](status st) {
    CHECK_FALSE(st);
    ++calls;
  });
  CHECK(calls == 0);
  io.run();
  CHECK(calls == 1);
}

TEST_CASE("use_awaitable throws the failure as boost::system::system_error and returns on success") {
  CHECK(awaited_status(&await_use_awaitable, errc::timeout) == errc::timeout);
  CHECK_FALSE(awaited_status(&await_use_awaitable, {}));
}

TEST_CASE("deferred operations can be awaited") {
  CHECK_FALSE(awaited_status(&await_deferred, {}));
}

TEST_CASE("as_tuple delivers the status as a tuple element") {
  CHECK(awaited_status(&await_as_tuple, errc::no_memory) == errc::no_memory);
}

TEST_CASE("use_future yields the status through a std::future") {
  asio::thread_pool pool(1);
  request req(req_op::flush, 0, {});
  std::future<void> f = flushkit::async_wait(req, pool.get_executor(), asio::use_future);
  std::thread completer([&] { req.complete(errc::device_broken); });
  try {
    f.get();
    FAIL("a failed wait must throw from the future");
  } catch (const boost::system::system_error& e) {
    CHECK(e.code() == errc::device_broken);
  }
  completer.join();
  pool.join();
}

TEST_CASE("a deferred wait does nothing until it is launched") {
  asio::io_context io;
  request req(req_op::flush, 0, {});
  auto op = flushkit::async_wait(req, io.get_executor(), asio::deferred);
  req.complete(errc::io_error);
  status seen{};
  std::move(op)([&](status st) { seen = st; });
  io.run();
  CHECK(seen == errc::io_error);
}

TEST_CASE("completion from another thread racing the wait delivers exactly once") {
  constexpr int rounds = 5000;
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  std::atomic<int> delivered{0};
  request req;
  for (int i = 0; i < rounds; ++i) {
    req.prepare(req_op::flush, 0, {});
    std::promise<void> done;
    std::atomic<bool> go{false};
    std::thread completer([&] {
      while (!go.load(std::memory_order_acquire)) {
      }
      req.complete(errc::timeout);
    });
    go.store(true, std::memory_order_release);
    flushkit::async_wait(req, io.get_executor(), [&](status st) {
      CHECK(st == errc::timeout);
      delivered.fetch_add(1, std::memory_order_relaxed);
      done.set_value();
    });
    done.get_future().wait();
    completer.join();
  }
  guard.reset();
  runner.join();
  CHECK(delivered.load() == rounds);
}

TEST_CASE("a wait whose executor is destroyed before delivery frees its handler without invoking it") {
  auto alive = std::make_shared<int>(0);
  int calls = 0;
  {
    asio::io_context io;
    request req(req_op::flush, 0, {});
    req.complete({});
    flushkit::async_wait(req, io.get_executor(), [&calls, keep = alive](status) { ++calls; });
    CHECK(alive.use_count() == 2); // the handler is in the operation, the delivery queued
  } // io destroyed with the delivery queued: never run
  CHECK(calls == 0);
  CHECK(alive.use_count() == 1); // handler destroyed, operation freed (ASan: no leak)
}

TEST_CASE("a coroutine awaiting a request completed on a pool thread resumes on its io_context thread") {
  asio::io_context io;
  asio::thread_pool pool(1);
  request req(req_op::flush, 0, {});
  status seen = errc::cancelled;
  std::thread::id resumed_on;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::tie(seen) = co_await flushkit::async_wait(req, asio::as_tuple(asio::use_awaitable));
        resumed_on = std::this_thread::get_id();
      },
      asio::detached);
  io.poll();
  asio::post(pool, [&req] { req.complete(errc::io_error); });
  io.run();
  pool.join();
  CHECK(seen == errc::io_error);
  CHECK(resumed_on == std::this_thread::get_id());
}

} // TEST_SUITE
