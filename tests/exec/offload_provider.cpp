#include <flushkit/exec/offload_provider.hpp>

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/completion.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/testing/cacheline_model.hpp>

#include "support/fake_providers.hpp"
#include "support/held_flush_provider.hpp"
#include "support/pmem_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using flushkit::errc;
using flushkit::offload_provider;
using flushkit::request;
using flushkit::status;

namespace {

/// A synchronous provider that records the thread it flushed on.
struct thread_recording_provider {
  std::atomic<std::thread::id> flushed_on{};
  status next{};
  int calls = 0;
  status flush() {
    flushed_on.store(std::this_thread::get_id());
    ++calls;
    return next;
  }
};

struct throwing_provider {
  status flush() { throw std::runtime_error("the disk caught fire"); }
};

/// The documented end of an offload_provider's life: a request's completion
/// does not mean the executor left its strand, so drain before destroying.
template <class P> struct drain_on_exit {
  P& p;
  ~drain_on_exit() { p.shutdown_and_wait(); }
};

/// Submits a request-less flush to `p` and waits for it on `io`.
template <class P> status flush_through(P& p, asio::io_context& io) {
  request req(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
  const flushkit::flush_result r = p.flush(req);
  if (!r.is_async()) return r.sync_status();
  status seen{errc::cancelled};
  flushkit::async_wait(req, io.get_executor(), [&](status st) { seen = st; });
  io.restart();
  io.run();
  return seen;
}

} // namespace

TEST_SUITE("exec/offload_provider") {

TEST_CASE("the blocking flush runs on the executor's thread and its status completes the request") {
  asio::thread_pool pool(1);
  asio::io_context io;
  offload_provider<thread_recording_provider> p(pool.get_executor(), std::in_place);
  drain_on_exit<decltype(p)> drain{p};
  static_assert(flushkit::async_flush_provider<decltype(p)>);
  static_assert(!flushkit::sync_flush_provider<decltype(p)>); // nothing calls it synchronously by surprise
  CHECK_FALSE(flush_through(p, io));
  CHECK(p.provider().flushed_on.load() != std::this_thread::get_id());
  p.provider().next = std::make_error_code(std::errc::io_error);
  CHECK(flush_through(p, io) == std::errc::io_error); // unchanged: the region applies its policy
  CHECK(p.provider().calls == 2);
  CHECK(p.flushes() == 2);
}

TEST_CASE("flushes run one at a time in submission order") {
  asio::thread_pool pool(2);
  std::vector<int> order;
  struct ordered_provider {
    explicit ordered_provider(std::vector<int>* o) : order(o) {}
    std::vector<int>* order;
    std::atomic<int> running{0};
    int next = 0;
    status flush() {
      CHECK(running.fetch_add(1) == 0);
      order->push_back(next++);
      running.fetch_sub(1);
      return {};
    }
  };
  offload_provider<ordered_provider> p(pool.get_executor(), std::in_place, &order);
  constexpr int n = 64;
  std::array<request, n> reqs{};
  std::atomic<int> done{0};
  for (request& r : reqs) {
    r.prepare(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
    r.on_complete([](void* ctx, request&, const status& st) {
      CHECK_FALSE(st);
      static_cast<std::atomic<int>*>(ctx)->fetch_add(1);
    }, &done);
    REQUIRE(p.flush(r).is_async());
  }
  p.shutdown_and_wait(); // waits for every queued flush
  CHECK(done.load() == n);
  REQUIRE(order.size() == n);
  for (int i = 0; i < n; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("a provider that throws fails its request with io_error") {
  asio::thread_pool pool(1);
  asio::io_context io;
  offload_provider<throwing_provider> p(pool.get_executor(), std::in_place);
  drain_on_exit<decltype(p)> drain{p};
  CHECK(flush_through(p, io) == errc::io_error);
}

TEST_CASE("after shutdown a flush is refused at once with shutting_down") {
  asio::thread_pool pool(1);
  flushkit::test::scripted_sync_provider inner;
  offload_provider<flushkit::test::scripted_sync_provider&> p(pool.get_executor(), inner);
  p.shutdown_and_wait();
  request req(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
  const flushkit::flush_result r = p.flush(req);
  REQUIRE_FALSE(r.is_async());
  CHECK(r.sync_status() == errc::shutting_down);
  CHECK(inner.calls == 0);
}

TEST_CASE("capabilities pass through: dirty tracking and the durability scope") {
  using tracked = offload_provider<flushkit::testing::cacheline_model_provider<2>&>;
  static_assert(flushkit::dirty_tracking<tracked>);
  static_assert(flushkit::detail::check_capability_chain<tracked>());
  auto b = pm::backing::memfd(4096);
  REQUIRE(b);
  asio::thread_pool pool(1);
  offload_provider<pm::file_sync_provider> p(pool.get_executor(), std::in_place, *b);
  CHECK(flushkit::durability_of(p) == flushkit::durability_scope::page_cache);
}

TEST_CASE("a device over a file, fdatasync offloaded: a FUA write is on the file when co_await resumes") {
  flushkit::test::temp_file f;
  auto b = pm::backing::file(f.path(), {.size = 1 << 16});
  REQUIRE(b);
  asio::io_context io;
  asio::thread_pool pool(1);
  offload_provider<pm::file_sync_provider> flusher(pool.get_executor(), std::in_place, *b,
                                                   pm::file_sync_mode::fdatasync);
  drain_on_exit<decltype(flusher)> drain{flusher};
  pm::pmem_device<flushkit::region<offload_provider<pm::file_sync_provider>&>> dev(io, *b, {}, flusher);
  REQUIRE_FALSE(dev.error()); // a page-cache file with a page-cache provider: accepted
  constexpr std::string_view record = "offloaded and durable";
  std::thread::id resumed_on;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await dev.async_write(4096, asio::buffer(record), flushkit::req_flags::fua);
        resumed_on = std::this_thread::get_id();
      },
      asio::detached);
  io.run();
  CHECK(resumed_on == std::this_thread::get_id());
  CHECK(flusher.flushes() == 1);
  char back[record.size()] = {};
  const int fd = ::open(f.path(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  CHECK(::pread(fd, back, sizeof back, 4096) == static_cast<::ssize_t>(sizeof back));
  ::close(fd);
  CHECK(std::string_view(back, sizeof back) == record);
}

TEST_CASE("behind a coalescer, one blocking flush covers the requests that completed before it") {
  asio::io_context io;
  asio::thread_pool pool(1);
  flushkit::test::gated_sync_provider gate;
  offload_provider<flushkit::test::gated_sync_provider&> flusher(pool.get_executor(), gate);
  drain_on_exit<decltype(flusher)> drain{flusher};
  flushkit::coalescer<offload_provider<flushkit::test::gated_sync_provider&>&> group(io, flusher);
  constexpr int n = 8;
  int ok = 0;
  for (int i = 0; i < n; ++i)
    group.async_flush([&](status st) { ok += st ? 0 : 1; });
  gate.wait_entered(); // the first backend flush is running on the pool thread
  gate.open();
  io.run();
  CHECK(ok == n);
  CHECK(group.stats().flushes_issued == 2); // the first request's flush, then one for the seven queued behind it
  group.wait_until_idle(); // the pool thread that delivered may still be inside the coalescer
}

} // TEST_SUITE
