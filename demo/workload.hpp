// demo/workload.hpp - the demo's writers: coroutines doing 4 KiB FUA writes through a pmem_device.
#pragma once

#include "run_state.hpp"

#include <flushkit/core/request.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cstdint>
#include <exception>
#include <latch>

namespace flushkit::demo {

/// One writer: until `rs->stop`, fills its next block with the pattern of
/// (writer, seq), writes it with FUA and waits for the acknowledgement. One
/// write in flight per writer; stops at the first error.
template <class Device>
boost::asio::awaitable<void> writer(Device* dev, run_state* rs, std::uint32_t w) {
  alignas(64) std::array<std::byte, block_bytes> buf;
  for (std::uint64_t seq = 0; !rs->counters.stop.load(std::memory_order_relaxed); ++seq) {
    fill_pattern(buf, w, seq);
    rs->counters.submitted.fetch_add(1, std::memory_order_relaxed);
    const auto t0 = clock_type::now();
    // as_tuple: the status as a value (plain use_awaitable would throw it).
    const auto [st] = co_await dev->async_write(run_state::block_of(w, seq) * block_bytes,
                                                boost::asio::buffer(buf), req_flags::fua,
                                                boost::asio::as_tuple(boost::asio::use_awaitable));
    rs->record(w, seq, st, t0, clock_type::now());
    if (st) co_return;
  }
}

/// Counts finished writers down.
struct writer_done {
  run_state* rs;
  std::latch* left;
  void operator()(const std::exception_ptr& e) const {
    if (e) rs->counters.aborted.fetch_add(1, std::memory_order_relaxed);
    left->count_down();
  }
};

/// Starts `n` writers on `io`; `done` is counted down as each one ends.
template <class Device>
void spawn_writers(boost::asio::io_context& io, Device& dev, run_state& rs, std::uint32_t n, std::latch& done) {
  for (std::uint32_t w = 0; w < n; ++w) boost::asio::co_spawn(io, writer(&dev, &rs, w), writer_done{&rs, &done});
}

} // namespace flushkit::demo
