#include <flushkit/core/request.hpp>

#include "support/violation_capture.hpp"

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <thread>

using flushkit::errc;
using flushkit::req_flags;
using flushkit::req_op;
using flushkit::request;
using flushkit::segment;
using flushkit::status;

namespace {

struct callback_log {
  int calls = 0;
  status last{};
  static void record(void* ctx, request&, const status& st) {
    auto* self = static_cast<callback_log*>(ctx);
    ++self->calls;
    self->last = st;
  }
};

} // namespace

TEST_SUITE("core/request") {

TEST_CASE("prepare sets op flags offset and segments") {
  std::array<std::byte, 100> a{}, b{};
  const std::array<segment, 2> segs{{{a.data(), 100}, {b.data(), 28}}};
  request req(req_op::write, 4096, segs, req_flags::preflush | req_flags::fua);
  CHECK(req.op() == req_op::write);
  CHECK(req.offset() == 4096);
  CHECK(req.size() == 128);
  CHECK(req.has_data());
  CHECK(has(req.flags(), req_flags::fua));
  CHECK(has(req.flags(), req_flags::preflush));
  req.set_flags(without(req.flags(), req_flags::fua));
  CHECK_FALSE(has(req.flags(), req_flags::fua));
  CHECK(has(req.flags(), req_flags::preflush));
}

TEST_CASE("a flush request or an empty segment list carries no data") {
  request flush(req_op::flush, 0, {}, req_flags::preflush);
  CHECK_FALSE(flush.has_data());
  request empty(req_op::write, 0, {});
  CHECK_FALSE(empty.has_data());
}

TEST_CASE("a callback installed before completion runs once with the status") {
  request req(req_op::flush, 0, {});
  callback_log log;
  req.on_complete(&callback_log::record, &log);
  CHECK(log.calls == 0);
  req.complete(errc::io_error);
  CHECK(log.calls == 1);
  CHECK(log.last == errc::io_error);
  CHECK(req.completed());
  CHECK(req.result() == errc::io_error);
}

TEST_CASE("a callback installed after completion runs immediately") {
  request req(req_op::flush, 0, {});
  req.complete({});
  callback_log log;
  req.on_complete(&callback_log::record, &log);
  CHECK(log.calls == 1);
  CHECK_FALSE(log.last);
}

TEST_CASE("a second completion is refused and reported") {
  flushkit::test::violation_capture capture;
  request req(req_op::flush, 0, {});
  callback_log log;
  req.on_complete(&callback_log::record, &log);
  CHECK(req.try_complete(errc::timeout));
  CHECK_FALSE(req.try_complete({}));
  req.complete({});
  CHECK(log.calls == 1);
  CHECK(req.result() == errc::timeout);
  CHECK(capture.violations() == (flushkit::test::asserts_enabled ? 1 : 0));
}

TEST_CASE("a second waiter is refused and reported and the first one keeps the completion") {
  flushkit::test::violation_capture capture;
  struct waiter {
    int calls = 0;
    status last{};
    static void fn(void* ctx, const status& st) {
      auto* self = static_cast<waiter*>(ctx);
      ++self->calls;
      self->last = st;
    }
  };
  request req(req_op::flush, 0, {});
  waiter first, second;
  CHECK(req.arm_waiter(&waiter::fn, &first));
  // Refused: never called, and not for the caller to deliver either.
  CHECK(req.arm_waiter(&waiter::fn, &second));
  CHECK(capture.violations() == (flushkit::test::asserts_enabled ? 1 : 0));
  req.complete(errc::io_error);
  CHECK(first.calls == 1);
  CHECK(first.last == errc::io_error);
  CHECK(second.calls == 0);
  req.prepare(req_op::flush, 0, {}); // a new use takes a new waiter
  CHECK(req.arm_waiter(&waiter::fn, &second));
  req.complete({});
  CHECK(second.calls == 1);
  CHECK(capture.violations() == (flushkit::test::asserts_enabled ? 1 : 0));
}

TEST_CASE("a second on_complete callback is refused and reported; the first one is called") {
  flushkit::test::violation_capture capture;
  int first = 0, second = 0;
  auto count = [](void* n, request&, const status&) { ++*static_cast<int*>(n); };
  request req(req_op::flush, 0, {});
  req.on_complete(count, &first);
  req.on_complete(count, &second);
  CHECK(capture.violations() == (flushkit::test::asserts_enabled ? 1 : 0));
  req.complete({});
  CHECK(first == 1);
  CHECK(second == 0);
}

TEST_CASE("prepare makes a completed request reusable") {
  request req(req_op::flush, 0, {});
  req.complete(errc::io_error);
  req.prepare(req_op::flush, 0, {});
  CHECK_FALSE(req.completed());
  callback_log log;
  req.on_complete(&callback_log::record, &log);
  req.complete({});
  CHECK(log.calls == 1);
  CHECK_FALSE(log.last);
}

TEST_CASE("an interception takes exactly the next completion") {
  request req(req_op::write, 0, {}, req_flags::preflush);
  callback_log final_log, step_log;
  req.on_complete(&callback_log::record, &final_log);
  req.intercept_completion(&callback_log::record, &step_log);
  req.complete({});
  CHECK(step_log.calls == 1);
  CHECK(final_log.calls == 0);
  CHECK_FALSE(req.completed());
  req.complete(errc::io_error);
  CHECK(step_log.calls == 1);
  CHECK(final_log.calls == 1);
  CHECK(final_log.last == errc::io_error);
}

TEST_CASE("completion racing the waiter delivers exactly once") {
  constexpr int rounds = 20000;
  std::atomic<int> delivered{0};
  request req;
  auto count = [](void* ctx, request&, const status& st) {
    CHECK(st == errc::io_error);
    static_cast<std::atomic<int>*>(ctx)->fetch_add(1, std::memory_order_relaxed);
  };
  for (int i = 0; i < rounds; ++i) {
    req.prepare(req_op::flush, 0, {});
    std::atomic<bool> go{false};
    std::thread completer([&] {
      while (!go.load(std::memory_order_acquire)) {
      }
      req.complete(errc::io_error);
    });
    go.store(true, std::memory_order_release);
    req.on_complete(count, &delivered);
    completer.join();
  }
  CHECK(delivered.load() == rounds);
}

} // TEST_SUITE

TEST_SUITE("core/request") {

TEST_CASE("the embedded work item leads back to its request") {
  request req;
  CHECK(&request::from_work(req.work) == &req);
}

} // TEST_SUITE
