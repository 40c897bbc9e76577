#include <flushkit/core/region.hpp>

#include "support/fake_providers.hpp"
#include "support/violation_capture.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <future>
#include <system_error>

using flushkit::errc;
using flushkit::flush_result;
using flushkit::region;
using flushkit::req_op;
using flushkit::request;
using flushkit::status;
using flushkit::test::scripted_async_provider;
using flushkit::test::scripted_sync_provider;

namespace {

// Provider statuses and the status the region must report for each.
struct policy_case {
  status in;
  status out;
};

const policy_case policy_cases[] = {
    {status{}, status{}},
    {errc::no_memory, errc::no_memory},
    {std::error_code(ENOMEM, std::system_category()), errc::no_memory},
    {std::make_error_code(std::errc::not_enough_memory), errc::no_memory},
    {errc::io_error, errc::io_error},
    {errc::timeout, errc::io_error},
    {errc::device_broken, errc::io_error},
    {errc::no_space, errc::io_error},
    {errc::shutting_down, errc::io_error},
    {std::error_code(EROFS, std::system_category()), errc::io_error},
    {status(1, flushkit::flushkit_category()), errc::io_error},
    {status(4242, flushkit::flushkit_category()), errc::io_error},
    {std::make_error_code(std::future_errc::broken_promise), errc::io_error},
};

} // namespace

TEST_SUITE("core/region") {

TEST_CASE("a region without a provider flushes successfully and synchronously") {
  region<> r;
  CHECK_FALSE(r.flush());
  request req(req_op::flush, 0, {});
  const flush_result res = r.flush(req);
  CHECK_FALSE(res.is_async());
  CHECK_FALSE(res.sync_status());
  CHECK_FALSE(req.completed());
}

TEST_CASE("the error policy maps every synchronous provider status") {
  for (const policy_case& c : policy_cases) {
    region<scripted_sync_provider> r;
    r.provider().next = c.in;
    CHECK(r.flush() == c.out);
    request req(req_op::flush, 0, {});
    const flush_result res = r.flush(req);
    CHECK_FALSE(res.is_async());
    CHECK(res.sync_status() == c.out);
    CHECK(r.provider().calls == 2);
  }
}

TEST_CASE("the error policy maps a synchronous answer of an asynchronous provider") {
  for (const policy_case& c : policy_cases) {
    region<scripted_async_provider> r;
    r.provider().next = c.in;
    request req(req_op::flush, 0, {});
    int calls = 0;
    req.on_complete([](void* ctx, request&, const status&) { ++*static_cast<int*>(ctx); }, &calls);
    const flush_result res = r.flush(req);
    CHECK_FALSE(res.is_async());
    CHECK(res.sync_status() == c.out);
    CHECK(calls == 0); // the caller completes a synchronous result
    req.complete(res.sync_status());
    CHECK(calls == 1);
    CHECK(req.result() == c.out);
  }
}

TEST_CASE("the error policy maps the status of an asynchronous completion") {
  for (const policy_case& c : policy_cases) {
    region<scripted_async_provider> r;
    r.provider().take_ownership = true;
    request req(req_op::flush, 0, {});
    status seen = errc::cancelled;
    req.on_complete([](void* ctx, request&, const status& st) { *static_cast<status*>(ctx) = st; }, &seen);
    const flush_result res = r.flush(req);
    REQUIRE(res.is_async());
    CHECK(&res.handle().get_request() == &req);
    CHECK_FALSE(req.completed());
    r.provider().owned->complete(c.in);
    CHECK(req.completed());
    CHECK(seen == c.out);
  }
}

TEST_CASE("a request-less flush is synchronous for a provider that has both flushes") {
  struct both {
    int sync_calls = 0, async_calls = 0;
    status flush() {
      ++sync_calls;
      return errc::timeout;
    }
    flush_result flush(request& r) {
      ++async_calls;
      return flush_result::async(r);
    }
  };
  region<both> r;
  CHECK(r.flush() == errc::io_error);
  CHECK(r.provider().sync_calls == 1);
  CHECK(r.provider().async_calls == 0);
}

TEST_CASE("a provider handle for another request fails the request with io_error") {
  struct wrong_handle {
    request other{req_op::flush, 0, {}};
    flush_result flush(request&) { return flush_result::async(other); }
  };
  flushkit::test::violation_capture capture;
  region<wrong_handle> r;
  request req(req_op::flush, 0, {});
  const flush_result res = r.flush(req);
  CHECK_FALSE(res.is_async());
  CHECK(res.sync_status() == errc::io_error);
  CHECK_FALSE(req.completed());
  req.complete(res.sync_status()); // no interception left behind: this is the final completion
  CHECK(req.result() == errc::io_error);
  CHECK(capture.violations() == (flushkit::test::asserts_enabled ? 1 : 0));
}

TEST_CASE("a region can refer to a provider it does not own") {
  scripted_sync_provider p;
  p.next = errc::no_memory;
  region<scripted_sync_provider&> r(p);
  CHECK(r.flush() == errc::no_memory);
  CHECK(p.calls == 1);
}

} // TEST_SUITE
