// Zero heap allocations per FUA write through pmem_device<region<pmem_guest&>>:
// the virtio-pmem guest driver's flush path (ordered work, ring add, kick,
// used-buffer interrupt, completion) with a scripted device on the same
// io_context, 100,000 writes after warm-up.
#include "support/counting_new.hpp"

#include <flushkit/virtio/pmem_guest.hpp>

#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include "support/alloc_measure.hpp"
#include "support/fua_loop.hpp"
#include "support/scripted_pmem_device.hpp"
#include "support/virtio_guest.hpp"

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <cstdint>

namespace asio = boost::asio;
namespace fv = flushkit::virtio;
namespace pm = flushkit::pmem;
using guest_t = fv::pmem_guest<asio::io_context::executor_type, flushkit_test::scripted_pmem_device>;
using device = pm::pmem_device<flushkit::region<guest_t&>>;

namespace {

constexpr int warmup = 1000;
constexpr int measured = 100000;
constexpr std::size_t block = 512;

/// Each completion submits the next FUA write.
using fua_loop = flushkit::test::fua_loop<device, block>;

} // namespace

TEST_CASE("virtio-pmem guest: 0 allocations over 100000 FUA writes through pmem_device") {
  asio::io_context io;
  flushkit_test::guest_ram ram;
  fv::pmem_control control;
  flushkit_test::scripted_pmem_device host(control);
  host.attach(ram.mem);
  fv::pmem_guest_options o;
  o.queue_size = 16;
  o.log = [](void*, const char*, const char*) {};
  guest_t guest(io.get_executor(), control, ram.mem, {ram.base(), ram.host(ram.base()), ram.size()}, host, o);
  host.connect(guest);
  REQUIRE_FALSE(guest.probe());
  auto b = pm::backing::memfd(64 * block);
  REQUIRE(b);
  {
    device dev(io, b->bytes(), {}, guest);
    fua_loop loop(dev);
    const std::size_t allocs = flushkit::test::chain_allocations(io, loop, warmup, measured);
    flushkit::test::report_allocations(allocs, measured);
    CHECK(allocs == 0);
    CHECK(loop.failures == 0);
    CHECK(host.chains() == 2 * warmup + measured);
    CHECK(guest.stats().submitted == 2 * warmup + measured);
    CHECK(guest.slab_fallbacks() == 0);
    CHECK(b->data()[(loop.n % 64) * block] == static_cast<std::byte>(loop.n));
    guest.mark_broken("test teardown"); // the device's final request-less flush then fails fast
    io.restart();
    io.run();
  }
}
