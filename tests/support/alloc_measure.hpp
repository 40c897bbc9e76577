// tests/support/alloc_measure.hpp - count the allocations of a loop in steady state.
//
// Used by the allocation tests (tests/alloc/), which include
// support/counting_new.hpp first (it replaces the global operator new).
#pragma once

#include "support/counting_new.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <cstddef>

namespace flushkit::test {

/// Runs a callback chain `loop` (anything with `int remaining` and `submit()`,
/// each completion submitting the next item until `remaining` runs out) for
/// `warmup` items on `io`, then for `measured` items. Returns the allocations
/// made by the measured run.
template <class Loop>
std::size_t chain_allocations(boost::asio::io_context& io, Loop& loop, int warmup, int measured) {
  loop.remaining = warmup;
  loop.submit();
  io.run();
  io.restart();
  return allocations_during([&] {
    loop.remaining = measured;
    loop.submit();
    io.run();
  });
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
