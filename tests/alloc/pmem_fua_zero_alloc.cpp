// Zero heap allocations per FUA write in steady state through pmem_device
// with an asynchronous provider that completes from the io_context (ordered
// executor work item embedded in the request): raw submit with a callback,
// and co_await dev.async_write(..., use_awaitable).
#include "support/counting_new.hpp"

#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include "support/alloc_measure.hpp"
#include "support/fua_loop.hpp"
#include "support/pmem_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cstddef>
#include <cstdint>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;
using flushkit::status;
using provider = flushkit::test::sequenced_async_provider;
using device = pm::pmem_device<flushkit::region<provider&>>;

namespace {

constexpr int warmup = 1000;
constexpr int measured = 100000;
constexpr std::size_t block = 512;

/// Callback chain: each completion submits the next FUA write.
using callback_loop = flushkit::test::fua_loop<device, block>;

asio::awaitable<void> write_loop(device* dev, int n, int* failures) {
  std::array<std::byte, block> data{};
  for (int i = 0; i < n; ++i) {
    data[0] = static_cast<std::byte>(i);
    const auto [st] = co_await dev->async_write(static_cast<std::uint64_t>(i % 64) * block, asio::buffer(data),
                                                flushkit::req_flags::fua, asio::as_tuple(asio::use_awaitable));
    if (st) ++*failures;
  }
}

// The default token (deferred for the device's any_io_executor), as the README writes it.
asio::awaitable<void> default_token_loop(device* dev, int n, int* failures) {
  std::array<std::byte, block> data{};
  for (int i = 0; i < n; ++i) {
    data[0] = static_cast<std::byte>(i);
    co_await dev->async_write(static_cast<std::uint64_t>(i % 64) * block, asio::buffer(data), flushkit::req_flags::fua);
  }
  static_cast<void>(failures); // a failure throws: the measured count is then never set and the test fails
}

} // namespace

TEST_CASE("raw submit with a callback: 0 allocations over 100000 FUA writes") {
  auto b = pm::backing::memfd(64 * block);
  REQUIRE(b);
  asio::io_context io;
  provider p(io);
  device dev(io, b->bytes(), {}, p);
  callback_loop loop(dev);
  const std::size_t allocs = flushkit::test::chain_allocations(io, loop, warmup, measured);
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(loop.failures == 0);
  CHECK(p.script.flushes() == 2 * warmup + measured);
  CHECK(b->data()[(loop.n % 64) * block] == static_cast<std::byte>(loop.n));
}

/// Warm-up run of `loop`, then the measured run: allocations in the measured
/// window, failures, and the provider's flush count.
struct coroutine_run {
  std::size_t allocs = ~std::size_t{0};
  int failures = 0;
  std::uint64_t flushes = 0;
};

coroutine_run measure_coroutine(asio::awaitable<void> (*loop)(device*, int, int*)) {
  auto b = pm::backing::memfd(64 * block);
  REQUIRE(b);
  asio::io_context io;
  provider p(io);
  device dev(io, b->bytes(), {}, p);
  coroutine_run r;
  asio::co_spawn(io, loop(&dev, warmup, &r.failures), asio::detached);
  io.run();
  io.restart();
  asio::co_spawn(io, flushkit::test::coroutine_allocations(loop, &dev, measured, &r.failures, &r.allocs),
                 asio::detached);
  io.run();
  r.flushes = p.script.flushes();
  return r;
}

TEST_CASE("co_await async_write with the default token: 0 allocations over 100000 FUA writes") {
  const coroutine_run r = measure_coroutine(&default_token_loop);
  flushkit::test::report_allocations(r.allocs, measured);
  CHECK(r.allocs == 0);
  CHECK(r.flushes == warmup + 1 + measured);
}

TEST_CASE("co_await async_write with as_tuple(use_awaitable): 0 allocations over 100000 FUA writes") {
  const coroutine_run r = measure_coroutine(&write_loop);
  flushkit::test::report_allocations(r.allocs, measured);
  CHECK(r.allocs == 0);
  CHECK(r.failures == 0);
  CHECK(r.flushes == warmup + 1 + measured);
}
