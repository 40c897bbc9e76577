// Zero heap allocations per FUA write through the whole in-process virtio-pmem
// stack: pmem_device<region<pmem_guest&>> (and the same through a coalescer)
// -> guest ordered work, ring add, kick -> pmem_host on its own event-loop
// thread -> flush on the host's 2-thread blocking pool -> used buffer,
// interrupt -> guest event-loop thread -> completion, which submits the next
// write. 100,000 writes after warm-up, counted over every thread. And a
// coroutine on the test thread awaiting pmem_guest::async_flush (default
// token), answered through the same stack on the other threads.
//
// Wiring: demo/virtio_topology.hpp's `inproc_topology` (host and guest loops
// on separate threads, inproc_pair). The host's flush target is the one that
// topology builds: `pmem::file_sync_provider` in fdatasync mode over the
// medium, here a memfd backing (tmpfs: a real fdatasync syscall that returns
// at once, so the test measures the stack, not a disk).
#include "support/counting_new.hpp"

#include "../../demo/virtio_topology.hpp"

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include "support/alloc_measure.hpp"
#include "support/fua_loop.hpp"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <cstdint>

namespace pm = flushkit::pmem;
using topology = flushkit::demo::inproc_topology;
using guest_t = topology::guest_t;
using coalescer_t = flushkit::coalescer<guest_t&>;

namespace asio = boost::asio;

namespace {

// `n` request-less guest flushes awaited with the guest's default token.
asio::awaitable<void> flush_loop(guest_t* g, int n, int* failures) {
  for (int i = 0; i < n; ++i) co_await g->async_flush(); // a failure throws: the count is then never set
  static_cast<void>(failures);
}

constexpr int warmup = 1000;
constexpr int measured = 100000;
constexpr std::size_t block = 512;

/// What one run measured.
struct fua_run {
  std::size_t allocs = ~std::size_t{0};
  int failures = -1;
  unsigned last = 0; // number of the last write (its first byte, mod 256)
};

/// Warm-up chain, then the measured chain; the caller's thread only waits.
template <class Device> fua_run run_chains(Device& dev) {
  flushkit::test::fua_loop<Device, block> loop(dev);
  loop.start(warmup);
  loop.wait();
  fua_run r;
  r.allocs = flushkit::test::allocations_during([&] {
    loop.start(measured);
    loop.wait();
  });
  r.failures = loop.failures;
  r.last = loop.n;
  return r;
}

} // namespace

TEST_CASE("virtio-pmem guest and host on their own threads: 0 allocations over 100000 FUA writes") {
  auto b = pm::backing::memfd(64 * block);
  REQUIRE(b);
  topology topo(*b);
  pm::pmem_device<flushkit::region<guest_t&>> dev(topo.guest().get_executor(), b->bytes(), {}, topo.guest());
  const fua_run r = run_chains(dev);
  dev.remove(); // no final flush: the guest is an asynchronous provider
  topo.shutdown();
  flushkit::test::report_allocations(r.allocs, measured);
  CHECK(r.allocs == 0);
  CHECK(r.failures == 0);
  CHECK(topo.totals().flushes == warmup + measured);
  CHECK(topo.totals().failures == 0);
  CHECK(topo.totals().malformed == 0);
  CHECK(topo.guest().slab_fallbacks() == 0);
  CHECK(b->data()[(r.last % 64) * block] == static_cast<std::byte>(r.last));
}

TEST_CASE("virtio-pmem guest and host through a coalescer: 0 allocations over 100000 FUA writes") {
  auto b = pm::backing::memfd(64 * block);
  REQUIRE(b);
  topology topo(*b);
  coalescer_t c(topo.guest().get_executor(), topo.guest());
  pm::pmem_device<flushkit::region<coalescer_t&>> dev(c.get_executor(), b->bytes(), {}, c);
  const fua_run r = run_chains(dev);
  dev.remove();
  topo.shutdown();
  const flushkit::coalescer_stats s = c.stats();
  flushkit::test::report_allocations(r.allocs, measured);
  CHECK(r.allocs == 0);
  CHECK(r.failures == 0);
  // One write in flight at a time: nothing to coalesce, one backend flush each.
  CHECK(s.requests_completed == warmup + measured);
  CHECK(s.flushes_issued == warmup + measured);
  CHECK(topo.totals().flushes == warmup + measured);
  CHECK(topo.totals().failures == 0);
  CHECK(topo.guest().slab_fallbacks() == 0);
  CHECK(b->data()[(r.last % 64) * block] == static_cast<std::byte>(r.last));
}

TEST_CASE("co_await pmem_guest::async_flush from another thread's coroutine: 0 allocations over 100000 flushes") {
  auto b = pm::backing::memfd(64 * block);
  REQUIRE(b);
  topology topo(*b);
  asio::io_context app; // the coroutine's thread: this one
  int failures = 0;
  std::size_t allocs = ~std::size_t{0};
  asio::co_spawn(app, flush_loop(&topo.guest(), warmup, &failures), asio::detached);
  app.run();
  app.restart();
  asio::co_spawn(app, flushkit::test::coroutine_allocations(&flush_loop, &topo.guest(), measured, &failures, &allocs),
                 asio::detached);
  app.run();
  topo.shutdown();
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(topo.totals().flushes == warmup + 1 + measured);
  CHECK(topo.totals().failures == 0);
  CHECK(topo.guest().slab_fallbacks() == 0);
}
