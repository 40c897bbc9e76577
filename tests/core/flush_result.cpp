#include <flushkit/core/flush_result.hpp>

#include <doctest/doctest.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <utility>

namespace asio = boost::asio;
using flushkit::errc;
using flushkit::flush_result;
using flushkit::req_op;
using flushkit::request;
using flushkit::status;

namespace {

asio::awaitable<void> await_handle(flushkit::async_completion handle, status* out) {
  try {
    co_await std::move(handle);
    *out = status{};
  } catch (const boost::system::system_error& e) {
    *out = e.code();
  }
}

} // namespace

TEST_SUITE("core/flush_result") {

TEST_CASE("a synchronous result carries its status and no handle") {
  const flush_result ok = flush_result::done();
  CHECK_FALSE(ok.is_async());
  CHECK_FALSE(ok.sync_status());
  const flush_result failed = flush_result::done(errc::io_error);
  CHECK_FALSE(failed.is_async());
  CHECK(failed.sync_status() == errc::io_error);
}

TEST_CASE("an asynchronous result refers to the request the provider owns") {
  request req(req_op::flush, 0, {});
  const flush_result r = flush_result::async(req);
  CHECK(r.is_async());
  CHECK_FALSE(r.sync_status());
  CHECK(&r.handle().get_request() == &req);
}

TEST_CASE("co_await on the handle resumes with the provider's status") {
  asio::io_context io;
  request req(req_op::flush, 0, {});
  status seen = errc::cancelled;
  asio::co_spawn(io, await_handle(flush_result::async(req).handle(), &seen), asio::detached);
  io.poll();
  CHECK(seen == errc::cancelled); // suspended: nothing completed yet
  req.complete(errc::timeout);
  io.run();
  CHECK(seen == errc::timeout);
}

TEST_CASE("the handle accepts a plain callback token") {
  asio::io_context io;
  request req(req_op::flush, 0, {});
  status seen = errc::cancelled;
  flush_result::async(req).handle().async_wait(asio::bind_executor(io, [&](status st) { seen = st; }));
  req.complete({});
  io.run();
  CHECK_FALSE(seen);
}

} // TEST_SUITE
