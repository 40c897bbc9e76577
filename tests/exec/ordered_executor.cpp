#include <flushkit/exec/ordered_executor.hpp>

#include "support/violation_capture.hpp"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using flushkit::errc;
using flushkit::status;
using flushkit::work_item;

namespace {

using pool_executor = asio::thread_pool::executor_type;

/// Records the order in which items start and finish, and whether two ever
/// overlapped.
struct order_log {
  std::mutex mu;
  std::vector<int> started, finished;
  std::atomic<int> running{0};
  std::atomic<int> overlaps{0};

  void start(int id) {
    if (running.fetch_add(1) != 0) ++overlaps;
    std::lock_guard lk(mu);
    started.push_back(id);
  }
  void finish(int id) {
    {
      std::lock_guard lk(mu);
      finished.push_back(id);
    }
    running.fetch_sub(1);
  }
};

/// An item that finishes inside run().
template <class Ex> struct sync_item {
  flushkit::ordered_executor<Ex>* ex = nullptr;
  order_log* log = nullptr;
  int id = 0;
  work_item work{&sync_item::run, this};

  static void run(work_item& w, void* ctx) {
    auto* self = static_cast<sync_item*>(ctx);
    self->log->start(self->id);
    self->log->finish(self->id);
    self->ex->finish(w);
  }
};

/// An item that runs a coroutine which suspends on a timer before finishing.
struct coroutine_item {
  flushkit::ordered_executor<pool_executor>* ex = nullptr;
  asio::thread_pool* pool = nullptr;
  order_log* log = nullptr;
  int id = 0;
  work_item work{&coroutine_item::run, this};

  static asio::awaitable<void> body(coroutine_item* self) {
    self->log->start(self->id);
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::microseconds(50));
    co_await t.async_wait(asio::use_awaitable);
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    self->log->finish(self->id);
    self->ex->finish(self->work);
  }
  static void run(work_item&, void* ctx) {
    auto* self = static_cast<coroutine_item*>(ctx);
    asio::co_spawn(*self->pool, body(self), asio::detached);
  }
};

/// Numbers `items` 0, 1, ... and submits them to `ex` in that order; each
/// runs its coroutine on `pool` and records into `log`.
void submit_coroutine_items(std::deque<coroutine_item>& items, flushkit::ordered_executor<pool_executor>& ex,
                            asio::thread_pool& pool, order_log& log) {
  int id = 0;
  for (coroutine_item& it : items) {
    it.ex = &ex;
    it.pool = &pool;
    it.log = &log;
    it.id = id++;
    REQUIRE_FALSE(ex.submit(it.work));
  }
}

std::vector<int> iota_ids(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i);
  return v;
}

} // namespace

TEST_SUITE("exec/ordered_executor") {

TEST_CASE("items run in submission order one at a time") {
  asio::io_context io;
  flushkit::ordered_executor<> ex(io.get_executor());
  order_log log;
  std::deque<sync_item<asio::io_context::executor_type>> items(200);
  for (int i = 0; i < 200; ++i) {
    items[static_cast<std::size_t>(i)].ex = &ex;
    items[static_cast<std::size_t>(i)].log = &log;
    items[static_cast<std::size_t>(i)].id = i;
    REQUIRE_FALSE(ex.submit(items[static_cast<std::size_t>(i)].work));
  }
  io.run();
  CHECK(log.started == iota_ids(200));
  CHECK(log.finished == iota_ids(200));
  CHECK(log.overlaps == 0);
  CHECK(ex.idle());
  CHECK(ex.submitted() == 200);
  CHECK(ex.finished() == 200);
  CHECK(ex.slab_fallbacks() == 0);
}

TEST_CASE("suspending coroutine items on a thread pool stay strictly serialised") {
  constexpr int n = 64;
  asio::thread_pool pool(4);
  flushkit::ordered_executor<pool_executor> ex(pool.get_executor());
  order_log log;
  std::deque<coroutine_item> items(n);
  submit_coroutine_items(items, ex, pool, log);
  ex.drain();
  CHECK(log.started == iota_ids(n));
  CHECK(log.finished == iota_ids(n));
  CHECK(log.overlaps == 0);
  pool.join();
}

TEST_CASE("submissions from several threads are each run once and never overlap") {
  constexpr int threads = 4, per_thread = 500;
  asio::thread_pool pool(2);
  flushkit::ordered_executor<pool_executor> ex(pool.get_executor());
  order_log log;
  std::deque<sync_item<pool_executor>> items(threads * per_thread);
  std::vector<std::thread> submitters;
  for (int t = 0; t < threads; ++t)
    submitters.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto& it = items[static_cast<std::size_t>(t * per_thread + i)];
        it.ex = &ex;
        it.log = &log;
        it.id = t * per_thread + i;
        CHECK_FALSE(ex.submit(it.work));
      }
    });
  for (auto& s : submitters) s.join();
  ex.drain();
  CHECK(log.finished.size() == threads * per_thread);
  CHECK(log.overlaps == 0);
  // FIFO per submitting thread.
  for (int t = 0; t < threads; ++t) {
    int last = -1;
    for (int id : log.started)
      if (id / per_thread == t) {
        CHECK(id > last);
        last = id;
      }
  }
  pool.join();
}

TEST_CASE("freeze holds queued items and thaw releases them in order") {
  asio::io_context io;
  flushkit::ordered_executor<> ex(io.get_executor());
  order_log log;
  std::deque<sync_item<asio::io_context::executor_type>> items(3);
  ex.freeze();
  CHECK(ex.is_frozen());
  for (int i = 0; i < 3; ++i) {
    items[static_cast<std::size_t>(i)].ex = &ex;
    items[static_cast<std::size_t>(i)].log = &log;
    items[static_cast<std::size_t>(i)].id = i;
    REQUIRE_FALSE(ex.submit(items[static_cast<std::size_t>(i)].work));
  }
  io.run();
  io.restart();
  CHECK(log.started.empty());
  CHECK_FALSE(ex.idle());
  ex.thaw();
  io.run();
  CHECK(log.started == iota_ids(3));
  CHECK(ex.idle());
}

TEST_CASE("freeze while an item is suspended lets it finish and starts nothing more") {
  asio::io_context io;
  flushkit::ordered_executor<> ex(io.get_executor());
  int first_runs = 0, second_runs = 0;
  work_item first([](work_item&, void* ctx) { ++*static_cast<int*>(ctx); }, &first_runs);
  work_item second([](work_item&, void* ctx) { ++*static_cast<int*>(ctx); }, &second_runs);
  REQUIRE_FALSE(ex.submit(first));
  REQUIRE_FALSE(ex.submit(second));
  io.run_one();
  CHECK(first_runs == 1);
  ex.freeze();
  ex.finish(first); // finishes after the freeze, from outside the strand
  io.restart();
  io.run();
  CHECK(second_runs == 0);
  ex.thaw();
  io.restart();
  io.run();
  CHECK(second_runs == 1);
  ex.finish(second);
  CHECK(ex.idle());
}

TEST_CASE("drain waits for queued and suspended items") {
  asio::thread_pool pool(2);
  flushkit::ordered_executor<pool_executor> ex(pool.get_executor());
  order_log log;
  std::deque<coroutine_item> items(8);
  submit_coroutine_items(items, ex, pool, log);
  ex.drain();
  CHECK(log.finished.size() == 8);
  CHECK(ex.idle());
  pool.join();
}

TEST_CASE("shutdown runs every queued item and rejects later submissions") {
  asio::thread_pool pool(2);
  flushkit::ordered_executor<pool_executor> ex(pool.get_executor());
  order_log log;
  std::deque<coroutine_item> items(16);
  ex.freeze(); // items are queued, none running, when shutdown starts
  submit_coroutine_items(items, ex, pool, log);
  ex.shutdown();
  CHECK(log.finished == iota_ids(16));
  work_item late([](work_item&, void*) { FAIL("a rejected item ran"); }, nullptr);
  CHECK(ex.submit(late) == errc::shutting_down);
  CHECK_FALSE(late.is_queued());
  CHECK(ex.is_shutting_down());
  ex.shutdown(); // idempotent
  pool.join();
}

TEST_CASE("submissions racing shutdown are either run or rejected and never lost") {
  constexpr int rounds = 50, per_round = 64;
  for (int round = 0; round < rounds; ++round) {
    asio::thread_pool pool(2);
    flushkit::ordered_executor<pool_executor> ex(pool.get_executor());
    order_log log;
    std::deque<sync_item<pool_executor>> items(per_round);
    std::atomic<int> accepted{0}, rejected{0};
    std::thread submitter([&] {
      for (int i = 0; i < per_round; ++i) {
        auto& it = items[static_cast<std::size_t>(i)];
        it.ex = &ex;
        it.log = &log;
        it.id = i;
        const status st = ex.submit(it.work);
        if (!st)
          ++accepted;
        else if (st == errc::shutting_down)
          ++rejected;
      }
    });
    ex.shutdown();
    submitter.join();
    ex.drain();
    CHECK(accepted + rejected == per_round);
    CHECK(static_cast<int>(log.finished.size()) == accepted.load());
    for (auto& it : items) CHECK_FALSE(it.work.is_queued());
    pool.join();
  }
}

TEST_CASE("finishing an item that is not running is a contract violation") {
  if (!flushkit::test::asserts_enabled) return;
  flushkit::test::violation_capture capture;
  asio::io_context io;
  flushkit::ordered_executor<> ex(io.get_executor());
  work_item stray;
  ex.finish(stray);
  CHECK(capture.violations() >= 1);
}

} // TEST_SUITE
