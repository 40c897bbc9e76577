// examples/05_timeouts_and_cancellation.cpp - giving up on a write that does not come back.
//
// A provider whose flushes hang until it is told to answer stands in for a
// stalled device. A FUA write raced with a timer returns at the timer; a
// write bound to a cancellation signal returns when the signal is emitted.
// Either way the write is only detached: the device still completes it, once,
// when the flush finally answers, and a later flush says what is durable.
#include "example_support.hpp"

#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <span>
#include <variant>
#include <vector>

namespace asio = boost::asio;
namespace pm = flushkit::pmem;

namespace {

/// An asynchronous provider that keeps every flush until `answer()`.
class stalled_provider {
public:
  flushkit::flush_result flush(flushkit::request& req) {
    held_.push_back(&req);
    return flushkit::flush_result::async(req);
  }
  void answer() {
    std::vector<flushkit::request*> held;
    held.swap(held_);
    for (flushkit::request* r : held) r->complete({});
  }
  std::size_t holding() const noexcept { return held_.size(); }

private:
  std::vector<flushkit::request*> held_;
};

using device = pm::pmem_device<flushkit::region<stalled_provider&>>;

bool timed_out = false;

using namespace boost::asio::experimental::awaitable_operators;

asio::awaitable<void> save(device& dev, std::span<const std::byte> record) {
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
  auto result = co_await (dev.async_write(0, asio::buffer(record), flushkit::req_flags::fua,
                                          asio::as_tuple(asio::use_awaitable)) ||
                          timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (result.index() == 1) co_return;              // timed out: the write was detached
  if (auto [ec] = std::get<0>(result); ec) co_return; // the write failed: ec says why
  // durable
}

asio::awaitable<void> save_with_deadline(device& dev, std::span<const std::byte> record) {
  const auto start = std::chrono::steady_clock::now();
  co_await save(dev, record);
  timed_out = std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(20);
}

} // namespace

int main() {
  asio::io_context io;
  stalled_provider provider;
  std::vector<std::byte> medium(1 << 16);
  pm::device_options opts;
  opts.medium = pm::persistence::none; // plain memory: a scratch device
  device dev(io, std::span(medium), opts, provider);
  const std::array<std::byte, 8> bytes{};
  const std::span<const std::byte> record(bytes);
  int failures = 0;

  // 1. A timeout: the coroutine returns at the timer although the flush hangs.
  asio::co_spawn(io, save_with_deadline(dev, record), asio::detached);
  io.run();
  failures += example::check(timed_out && provider.holding() == 1, "|| with a timer: returned at the timer");
  failures += example::check(dev.in_flight() == 1, "the detached write is still the device's");
  provider.answer();
  failures += example::check(dev.in_flight() == 0, "it completed once the flush answered");

  // 2. A signal bound to one operation.
  bool aborted = false;
  asio::cancellation_signal cancel;
  dev.async_write(0, asio::buffer(record), flushkit::req_flags::fua,
                  asio::bind_cancellation_slot(cancel.slot(), asio::bind_executor(io, [&](flushkit::status st) {
                    aborted = st == asio::error::operation_aborted;
                  })));
  asio::post(io, [&] { cancel.emit(asio::cancellation_type::terminal); });
  io.restart();
  io.run();
  failures += example::check(aborted, "bind_cancellation_slot: operation_aborted");
  provider.answer();
  failures += example::check(dev.in_flight() == 0, "and the write completed inside the device");
  return failures == 0 ? 0 : 1;
}
