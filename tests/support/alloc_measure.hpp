// tests/support/alloc_measure.hpp - count the allocations of a loop in steady state.
//
// Used by the allocation tests (tests/alloc/), which include
// support/counting_new.hpp first (it replaces the global operator new).
#pragma once

#include "support/counting_new.hpp"

#include <doctest/doctest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <array>
#include <cstddef>
#include <future>

namespace flushkit::test {

/// Warms the rare path of a strand over a thread_pool: the strand re-posts
/// its invoker (72 bytes) through the pool thread's recycling cache when the
/// next item arrives while the invoker still runs. That race may first happen
/// after 100000 items, and its first occurrence allocates once per process;
/// a pool-thread post of a larger handler leaves a block that size in the
/// pool thread's cache. Returns once that post ran, so the warm-up's own
/// allocations are never inside a measured window.
template <class Pool> void warm_pool_strand_cache(Pool& pool) {
  std::promise<void> done;
  boost::asio::post(pool, [&pool, &done] {
    boost::asio::post(pool, [pad = std::array<std::byte, 96>{}, &done] {
      static_cast<void>(pad);
      done.set_value();
    });
  });
  done.get_future().wait();
}

/// Prints the allocations per write of a measured window (a doctest MESSAGE).
inline void report_allocations(std::size_t allocs, int measured) {
  MESSAGE("allocations per write: ", static_cast<double>(allocs) / measured, " (allocs = ", allocs, " over ",
          measured, ")");
}

/// Runs a callback chain `loop` (anything with `int remaining` and `submit()`,
/// each completion submitting the next item until `remaining` runs out) for
/// `warmup` items on `io`, then for `warmup` items again and for `measured`
/// items inside one `io.run()`. Returns the allocations made by the measured
/// chain.
///
/// Why one run: Asio keeps its per-thread handler cache (recycling_allocator,
/// thread_info_base) in the `run()` call, so every `run()` starts cold and its
/// first posts allocate. Steady state is a loop that keeps running. The
/// second chain is started, and the measured one counted, from a handler that
/// re-posts itself on `io` until the chain before it finished (`remaining`
/// reached 0); that handler's own posts come from the same warm cache.
/// Single thread: the chain's completions run on the thread calling this.
template <class Loop>
std::size_t chain_allocations(boost::asio::io_context& io, Loop& loop, int warmup, int measured) {
  loop.remaining = warmup;
  loop.submit();
  io.run();
  io.restart();

  struct driver {
    boost::asio::io_context* io;
    Loop* loop;
    int measured;
    int* phase;
    std::size_t* count;
    void operator()() const {
      if (loop->remaining > 0) return boost::asio::post(*io, *this);
      if (*phase == 0) { // warm chain of this run finished: start the measured one
        *phase = 1;
        *count = allocation_count.load();
        loop->remaining = measured;
        loop->submit();
        return boost::asio::post(*io, *this);
      }
      *count = allocation_count.load() - *count; // measured chain finished
    }
  };
  int phase = 0;
  std::size_t count = 0;
  loop.remaining = warmup;
  loop.submit();
  boost::asio::post(io, driver{&io, &loop, measured, &phase, &count});
  io.run();
  return count;
}

/// Coroutine: awaits `loop(target, 1, failures)` (builds the frames once),
/// then stores in `*allocs` the allocations made while it awaits
/// `loop(target, measured, failures)`, so the count starts inside an already
/// running coroutine.
template <class Target>
boost::asio::awaitable<void> coroutine_allocations(boost::asio::awaitable<void> (*loop)(Target*, int, int*),
                                                   Target* target, int measured, int* failures,
                                                   std::size_t* allocs) {
  co_await loop(target, 1, failures);
  *allocs = allocation_count.load();
  co_await loop(target, measured, failures);
  *allocs = allocation_count.load() - *allocs;
}

} // namespace flushkit::test
