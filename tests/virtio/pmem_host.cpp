#include <flushkit/virtio/pmem_host.hpp>

#include "support/pmem_test_driver.hpp"
#include "support/virtio_guest.hpp"

#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/file_sync_provider.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <unistd.h>

namespace {

namespace fv = flushkit::virtio;
namespace ds = fv::device_status;
using flushkit::errc;
using flushkit::status;
using flushkit_test::guest_ram;
using flushkit_test::pmem_answer;
using flushkit_test::pmem_test_driver;
using io_ex = boost::asio::io_context::executor_type;
using pool_ex = boost::asio::thread_pool::executor_type;

struct counting_notifier {
  std::atomic<int> n{0};
  void notify() { n.fetch_add(1); }
};
static_assert(fv::notifier<counting_notifier>);

struct counting_target {
  std::atomic<int> calls{0};
  status next{};
  status flush() {
    calls.fetch_add(1);
    return next;
  }
};
static_assert(fv::flush_target<counting_target>);
static_assert(fv::flush_target<flushkit::pmem::file_sync_provider>);

constexpr fv::pmem_config test_range{0x4000'0000, 1 << 20};

/// Single-threaded rig: the device loop and the "blocking pool" are two
/// io_contexts run by the test thread, so every interleaving is chosen by the test.
template <class Target = counting_target> struct rig {
  explicit rig(fv::pmem_host_options o = {}, fv::pmem_config r = test_range)
      : host(dev.get_executor(), pool.get_executor(), ctl, ram.mem, target, irq, r, o) {
    host.set_config_notifier(cfg);
  }

  /// Runs device and pool handlers until neither has any left.
  void settle() {
    for (;;) {
      dev.restart();
      pool.restart();
      if (dev.poll() + pool.poll() == 0) return;
    }
  }
  /// The driver kicks if the ring asks for it; the device handles it.
  void kick() {
    if (drv.kick_needed()) host.on_kick();
  }
  void flush_round(std::uint32_t slot, std::uint32_t type = fv::pmem_req_type_flush) {
    REQUIRE_FALSE(drv.add(slot, type));
    kick();
    settle();
  }

  guest_ram ram;
  fv::pmem_control ctl;
  boost::asio::io_context dev, pool;
  counting_notifier irq, cfg;
  Target target;
  fv::pmem_host<io_ex, io_ex, counting_notifier> host;
  pmem_test_driver drv{ram, ctl};
};

/// Runs `io` (blocking for handlers posted from other threads) until `done()`.
template <class Pred> void run_until(boost::asio::io_context& io, Pred done) {
  io.restart();
  auto guard = boost::asio::make_work_guard(io);
  while (!done()) io.run_one();
}

std::uint32_t response_word(const pmem_test_driver& d, std::uint32_t slot) {
  return fv::detail::load_le<std::uint32_t>(d.resp_host(slot));
}

} // namespace

TEST_SUITE("virtio/pmem_host") {

TEST_CASE("device registers features queue_size_max and config are published") {
  rig<> r;
  CHECK(r.ctl.device_features.load() == (fv::f_version_1 | fv::f_event_idx | fv::f_indirect_desc));
  CHECK((r.ctl.device_features.load() & fv::pmem_f_shmem_region) == 0);
  CHECK(r.ctl.queue_size_max.load() == 128);
  CHECK(r.ctl.config_start.load() == test_range.start);
  CHECK(r.ctl.config_size.load() == test_range.size);
  CHECK(r.ctl.config_generation.load() == 1);
  CHECK(r.ctl.status.load() == 0);

  fv::pmem_host_options o;
  o.offer_event_idx = false;
  o.offer_indirect_desc = false;
  o.queue_size_max = 256;
  rig<> plain(o);
  CHECK(plain.ctl.device_features.load() == fv::f_version_1);
  CHECK(plain.ctl.queue_size_max.load() == 256);
}

TEST_CASE("scenario 55 config start and size are little-endian at offsets 0 and 8") {
  rig<> r(fv::pmem_host_options{}, fv::pmem_config{0x0102030405060708ull, 0x1122334455667788ull});
  std::byte cfg[16];
  REQUIRE(r.host.read_config(0, cfg) == 16);
  for (int i = 0; i < 8; ++i) {
    CHECK(std::to_integer<int>(cfg[i]) == 8 - i);
    CHECK(std::to_integer<int>(cfg[8 + i]) == 0x88 - 0x11 * i);
  }
  std::byte size_only[8];
  REQUIRE(r.host.read_config(8, size_only) == 8);
  CHECK(std::to_integer<int>(size_only[0]) == 0x88);
  std::byte past[4];
  CHECK(r.host.read_config(16, past) == 0);
  CHECK(r.host.read_config(14, past) == 2);
}

TEST_CASE("scenario 55 size 0 is offered as is for the driver to refuse") {
  rig<> r(fv::pmem_host_options{}, fv::pmem_config{0x4000'0000, 0});
  CHECK(r.ctl.config_size.load() == 0);
  std::byte cfg[16];
  r.host.read_config(0, cfg);
  for (int i = 8; i < 16; ++i) CHECK(std::to_integer<int>(cfg[i]) == 0);
}

TEST_CASE("a flush request is answered ret 0 len 4 after one target flush with an interrupt") {
  for (bool event_idx : {true, false}) {
    CAPTURE(event_idx);
    rig<> r;
    REQUIRE(r.drv.init(event_idx ? fv::f_version_1 | fv::f_event_idx : fv::f_version_1));
    r.flush_round(0);
    const auto got = r.drv.collect();
    REQUIRE(got.size() == 1);
    CHECK(got[0].slot == 0);
    CHECK(got[0].len == 4);
    CHECK(got[0].ret == fv::pmem_resp_ok);
    CHECK(r.target.calls.load() == 1);
    CHECK(r.irq.n.load() == 1);
    const auto c = r.host.counters();
    CHECK(c.requests == 1);
    CHECK(c.flushes_issued == 1);
    CHECK(c.completed == 1);
    CHECK(c.failures == 0);
    CHECK(r.host.busy() == 0);
    CHECK(r.host.handler_fallbacks() == 0);
  }
}

TEST_CASE("the device loop does not wait for the flush") {
  rig<> r;
  REQUIRE(r.drv.init());
  REQUIRE_FALSE(r.drv.add(0));
  r.kick();
  r.dev.poll(); // the pool has not run: nothing answered yet, the device loop returned
  CHECK(r.target.calls.load() == 0);
  CHECK(r.drv.used_idx() == 0);
  CHECK(r.host.busy() == 1);
  r.settle();
  CHECK(r.drv.collect().size() == 1);
}

TEST_CASE("scenario 46 and anchor 10 unknown request type gets ret 1 len 4 and no flush") {
  for (std::uint32_t type : {1u, 2u, 0xFFFFFFFFu}) {
    CAPTURE(type);
    rig<> r;
    REQUIRE(r.drv.init());
    r.flush_round(3, type);
    const auto got = r.drv.collect();
    REQUIRE(got.size() == 1);
    CHECK(got[0].slot == 3);
    CHECK(got[0].len == 4);
    CHECK(got[0].ret == fv::pmem_resp_error);
    CHECK(r.target.calls.load() == 0);
    CHECK(r.irq.n.load() == 1);
    CHECK(r.host.counters().unsupported == 1);
    CHECK(r.host.counters().flushes_issued == 0);
    CHECK_FALSE(r.host.needs_reset());
    r.flush_round(4); // the device keeps working
    const auto next = r.drv.collect();
    REQUIRE(next.size() == 1);
    CHECK(next[0].ret == fv::pmem_resp_ok);
  }
}

TEST_CASE("scenario 48 and anchor 13 a failing backing flush gives ret 1 len 4 and an interrupt") {
  rig<> r;
  REQUIRE(r.drv.init());
  r.target.next = make_error_code(std::errc::io_error); // EIO from write-back
  r.flush_round(0);
  auto got = r.drv.collect();
  REQUIRE(got.size() == 1);
  CHECK(got[0].len == 4);
  CHECK(got[0].ret == fv::pmem_resp_error);
  CHECK(r.irq.n.load() == 1);
  CHECK(r.host.counters().failures == 1);

  r.target.next = {};
  r.host.fail_next(2); // injected: the target is not called
  got.clear();
  for (std::uint32_t i = 1; i <= 3; ++i) {
    r.flush_round(i);
    for (const pmem_answer& a : r.drv.collect()) got.push_back(a); // re-arms used_event (EVENT_IDX)
  }
  REQUIRE(got.size() == 3);
  CHECK(got[0].ret == 1);
  CHECK(got[1].ret == 1);
  CHECK(got[2].ret == 0);
  CHECK(r.target.calls.load() == 2);
  CHECK(r.host.counters().failures == 3);
  CHECK(r.irq.n.load() == 4);
  CHECK_FALSE(r.host.needs_reset());
}

struct anonymous_fdatasync {
  flushkit::pmem::backing b = std::move(flushkit::pmem::backing::anonymous(4096).value());
  flushkit::pmem::file_sync_provider p{b, flushkit::pmem::file_sync_mode::fdatasync};
  status flush() { return p.flush(); }
};

TEST_CASE("scenario 48 a non-file backend fails with EBADF and is answered ret 1") {
  anonymous_fdatasync probe;
  CHECK(probe.flush() == std::errc::bad_file_descriptor);
  rig<anonymous_fdatasync> r;
  REQUIRE(r.drv.init());
  r.flush_round(0);
  const auto got = r.drv.collect();
  REQUIRE(got.size() == 1);
  CHECK(got[0].len == 4);
  CHECK(got[0].ret == fv::pmem_resp_error);
  CHECK(r.irq.n.load() == 1);
}

struct file_target {
  std::string path = "/tmp/flushkit-pmem-host-" + std::to_string(::getpid());
  flushkit::pmem::backing b = std::move(flushkit::pmem::backing::file(path.c_str(), {.size = 8192}).value());
  flushkit::pmem::file_sync_provider p{b, flushkit::pmem::file_sync_mode::fdatasync};
  ~file_target() { std::remove(path.c_str()); }
  status flush() { return p.flush(); }
};

TEST_CASE("a real file backing is fdatasynced and the request answered ret 0") {
  rig<file_target> r;
  REQUIRE(r.drv.init());
  std::memcpy(r.target.b.data(), "durable", 7);
  r.flush_round(0);
  const auto got = r.drv.collect();
  REQUIRE(got.size() == 1);
  CHECK(got[0].ret == 0);
  CHECK(r.target.p.flushes() == 1);
}

TEST_CASE("scenario 47 a request without a response buffer sets NEEDS_RESET and later kicks are ignored") {
  rig<> r;
  REQUIRE(r.drv.init());
  const fv::buffer out[1] = {{r.drv.req_addr(0), 4}};
  REQUIRE_FALSE(r.drv.add_chain(out, {}, 0));
  r.kick();
  r.settle();
  CHECK((r.ctl.status.load() & ds::needs_reset) != 0);
  CHECK((r.ctl.status.load() & ds::driver_ok) != 0);
  CHECK(r.host.needs_reset());
  CHECK(r.host.queue().broken());
  CHECK(r.cfg.n.load() == 1);
  CHECK(r.host.counters().malformed == 1);
  CHECK(r.drv.used_idx() == 0);

  REQUIRE_FALSE(r.drv.add(1)); // a valid request after the violation is never consumed
  r.host.on_kick();
  r.settle();
  CHECK(r.drv.used_idx() == 0);
  CHECK(r.host.counters().requests == 1);
  CHECK(r.target.calls.load() == 0);

  r.drv.reset_device(); // the driver resets and starts again
  r.host.on_kick();
  CHECK(r.ctl.status.load() == 0);
  CHECK_FALSE(r.host.needs_reset());
  CHECK(r.host.counters().resets == 1);
  REQUIRE(r.drv.init());
  r.flush_round(2);
  const auto got = r.drv.collect();
  REQUIRE(got.size() == 1);
  CHECK(got[0].ret == 0);
}

TEST_CASE("scenario 47 framing violations each set NEEDS_RESET") {
  struct framing {
    const char* name;
    std::uint32_t out_len;
    std::uint32_t in_len; // 0 = none
    bool out_present;
  };
  const framing cases[] = {
      {"no readable buffer", 4, 4, false},
      {"request shorter than 4 bytes", 2, 4, true},
      {"response shorter than 4 bytes", 4, 2, true},
  };
  for (const framing& f : cases) {
    CAPTURE(f.name);
    rig<> r;
    REQUIRE(r.drv.init());
    const fv::buffer out[1] = {{r.drv.req_addr(0), f.out_len}};
    const fv::buffer in[1] = {{r.drv.resp_addr(0), f.in_len}};
    REQUIRE_FALSE(r.drv.add_chain(f.out_present ? std::span(out) : std::span<const fv::buffer>{}, in, 0));
    r.kick();
    r.settle();
    CHECK((r.ctl.status.load() & ds::needs_reset) != 0);
    CHECK(r.host.counters().malformed == 1);
    CHECK(r.host.failure_reason() != nullptr);
    CHECK(r.drv.used_idx() == 0);
    CHECK(r.target.calls.load() == 0);
  }
}

TEST_CASE("requests split over several descriptors are accepted") {
  rig<> r;
  REQUIRE(r.drv.init());
  std::memset(r.drv.resp_host(0), 0xAA, 8);
  std::memset(r.drv.req_host(0), 0, 8); // type 0 in two 2-byte halves, 4 trailing bytes
  const fv::buffer out[2] = {{r.drv.req_addr(0), 2}, {r.drv.req_addr(0) + 2, 6}};
  const fv::buffer in[4] = {{r.drv.resp_addr(0), 1}, {r.drv.resp_addr(0) + 1, 1}, {r.drv.resp_addr(0) + 2, 1},
                            {r.drv.resp_addr(0) + 3, 5}};
  REQUIRE_FALSE(r.drv.add_chain(out, in, 0));
  r.kick();
  r.settle();
  const auto got = r.drv.collect();
  REQUIRE(got.size() == 1);
  CHECK(got[0].len == 4);
  CHECK(response_word(r.drv, 0) == 0);
  CHECK(std::to_integer<int>(r.drv.resp_host(0)[4]) == 0xAA); // nothing past the 4-byte response
  CHECK(r.target.calls.load() == 1);
}

TEST_CASE("a ring violation sets NEEDS_RESET and counts as malformed") {
  rig<> r;
  REQUIRE(r.drv.init());
  // a head index beyond the queue size, written as a hostile guest would
  flushkit_test::raw_guest raw(r.ram, r.drv.addresses());
  raw.publish(200);
  r.host.on_kick();
  r.settle();
  CHECK((r.ctl.status.load() & ds::needs_reset) != 0);
  CHECK(std::string(r.host.failure_reason()) == "avail head index out of range");
  CHECK(r.host.counters().malformed == 1);
  CHECK(r.cfg.n.load() == 1);
}

TEST_CASE("activation rejects unoffered features and bad queue registers") {
  {
    fv::pmem_host_options o;
    o.offer_event_idx = false;
    rig<> r(o);
    REQUIRE(r.drv.init(fv::f_version_1 | fv::f_event_idx, true));
    r.host.on_kick();
    CHECK((r.ctl.status.load() & ds::needs_reset) != 0);
    CHECK(std::string(r.host.failure_reason()) == "driver accepted features the device did not offer");
  }
  {
    fv::pmem_host_options o;
    o.queue_size_max = 64;
    rig<> r(o); // the driver uses 128 > queue_size_max
    REQUIRE(r.drv.init());
    r.host.on_kick();
    CHECK((r.ctl.status.load() & ds::needs_reset) != 0);
    CHECK_FALSE(r.host.active());
  }
}

TEST_CASE("scenario 50 a spurious kick or a kick before DRIVER_OK is harmless") {
  rig<> r;
  r.host.on_kick(); // before any handshake
  CHECK_FALSE(r.host.active());
  REQUIRE(r.drv.init());
  r.host.on_kick(); // empty ring
  r.host.on_kick();
  r.settle();
  CHECK(r.host.active());
  CHECK_FALSE(r.host.needs_reset());
  CHECK(r.irq.n.load() == 0);
  CHECK(r.drv.used_idx() == 0);
  CHECK(r.host.counters().kicks == 3);
  CHECK(r.host.counters().requests == 0);
  r.flush_round(0);
  CHECK(r.drv.collect().size() == 1);
}

TEST_CASE("nothing is consumed before DRIVER_OK") {
  rig<> r;
  REQUIRE(r.drv.init());
  r.ctl.status.fetch_and(static_cast<std::uint8_t>(~ds::driver_ok));
  REQUIRE_FALSE(r.drv.add(0));
  r.host.on_kick();
  r.settle();
  CHECK(r.host.counters().requests == 0);
  r.ctl.status.fetch_or(ds::driver_ok);
  r.host.on_kick();
  r.settle();
  CHECK(r.drv.collect().size() == 1);
}

TEST_CASE("scenario 49 coalesced kick processes every available request") {
  rig<> r;
  REQUIRE(r.drv.init());
  REQUIRE_FALSE(r.drv.add(0));
  REQUIRE(r.drv.kick_needed());
  REQUIRE_FALSE(r.drv.add(1));
  CHECK_FALSE(r.drv.kick_needed()); // EVENT_IDX suppressed the second kick
  r.host.on_kick();
  r.settle();
  CHECK(r.drv.collect().size() == 2);
  CHECK(r.drv.in_flight() == 0);
}

TEST_CASE("scenario 49 one-pop-per-notify mode stalls and the stall is detected") {
  fv::pmem_host_options o;
  o.one_pop_per_notify = true;
  rig<> r(o);
  REQUIRE(r.drv.init());
  REQUIRE_FALSE(r.drv.add(0));
  REQUIRE(r.drv.kick_needed());
  REQUIRE_FALSE(r.drv.add(1));
  CHECK_FALSE(r.drv.kick_needed());
  r.host.on_kick();
  r.settle(); // the device loop and the pool are idle
  CHECK(r.drv.collect().size() == 1);
  CHECK(r.drv.in_flight() == 1); // stall: a request is still pending after the device went idle
  REQUIRE_FALSE(r.drv.add(2));
  CHECK_FALSE(r.drv.kick_needed()); // avail_event = last_avail: the new add is suppressed too
  r.settle();
  CHECK(r.drv.in_flight() == 2);
  r.host.set_one_pop_per_notify(false); // a real device drains on the next kick
  r.host.on_kick();
  r.settle();
  CHECK(r.drv.collect().size() == 2);
  CHECK(r.drv.in_flight() == 0);
}

TEST_CASE("dead device never answers") {
  rig<> r;
  REQUIRE(r.drv.init());
  r.host.set_dead(true);
  r.flush_round(0);
  CHECK(r.drv.in_flight() == 1);
  CHECK(r.host.counters().requests == 0);
  CHECK(r.host.counters().kicks == 1);
  r.host.set_dead(false);
  r.host.on_kick();
  r.settle();
  CHECK(r.drv.collect().size() == 1);
}

TEST_CASE("held flushes wait for release and complete in order") {
  rig<> r;
  REQUIRE(r.drv.init());
  r.host.set_hold(true);
  for (std::uint32_t i = 0; i < 3; ++i) REQUIRE_FALSE(r.drv.add(i));
  r.kick();
  r.settle();
  CHECK(r.host.held() == 3);
  CHECK(r.host.counters().flushes_issued == 0);
  CHECK(r.drv.used_idx() == 0);
  r.host.set_hold(false);
  r.host.release_held();
  r.settle();
  const auto got = r.drv.collect();
  REQUIRE(got.size() == 3);
  for (std::uint32_t i = 0; i < 3; ++i) CHECK(got[i].slot == i);
  CHECK(r.target.calls.load() == 3);
}

TEST_CASE("scenario 54 reset by the driver while flushes are on the pool drops their completions") {
  rig<> r;
  REQUIRE(r.drv.init());
  REQUIRE_FALSE(r.drv.add(0));
  REQUIRE_FALSE(r.drv.add(1));
  r.kick();
  r.dev.poll(); // both flushes are on the pool, not run
  REQUIRE(r.host.busy() == 2);
  const std::uint64_t gen = r.host.generation();

  r.drv.reset_device();
  r.host.on_kick(); // the device sees status 0
  CHECK(r.ctl.status.load() == 0);
  CHECK(r.host.generation() == gen + 1);
  REQUIRE(r.drv.init()); // same ring addresses, zeroed ring
  std::memset(r.drv.resp_host(0), 0xAA, 4);
  std::memset(r.drv.resp_host(1), 0xAA, 4);
  r.host.on_kick();
  r.settle(); // the old flushes finish now
  CHECK(r.target.calls.load() == 2);
  CHECK(r.host.counters().stale == 2);
  CHECK(r.host.counters().completed == 0);
  CHECK(r.drv.used_idx() == 0);
  CHECK(response_word(r.drv, 0) == 0xAAAAAAAAu); // no byte of the old response written
  CHECK(response_word(r.drv, 1) == 0xAAAAAAAAu);
  CHECK(r.irq.n.load() == 0);
  CHECK(r.host.busy() == 0);

  r.flush_round(5); // the new generation works
  const auto got = r.drv.collect();
  REQUIRE(got.size() == 1);
  CHECK(got[0].slot == 5);
}

TEST_CASE("scenario 54 reset() drops held flushes and writes status 0") {
  rig<> r;
  REQUIRE(r.drv.init());
  r.host.set_hold(true);
  REQUIRE_FALSE(r.drv.add(0));
  r.kick();
  REQUIRE(r.host.held() == 1);
  const auto cg = r.ctl.config_generation.load();
  r.host.reset();
  CHECK(r.ctl.status.load() == 0);
  CHECK(r.ctl.config_generation.load() == cg + 1);
  CHECK(r.host.held() == 0);
  CHECK(r.host.busy() == 0);
  CHECK_FALSE(r.host.active());
  r.host.release_held();
  r.settle();
  CHECK(r.target.calls.load() == 0);
  CHECK(r.drv.used_idx() == 0);
}

TEST_CASE("after resets with every slot still on the pool the device waits for a slot") {
  fv::pmem_host_options o;
  o.queue_size_max = 4; // 4 slots; a 4-entry ring holds 2 two-descriptor requests
  rig<> r(o);
  pmem_test_driver drv4(r.ram, r.ctl, 4);
  for (int gen = 0; gen < 2; ++gen) {
    REQUIRE(drv4.init());
    REQUIRE_FALSE(drv4.add(0));
    REQUIRE_FALSE(drv4.add(1));
    if (drv4.kick_needed()) r.host.on_kick();
    r.dev.poll();
    drv4.reset_device();
    r.host.on_kick();
  }
  REQUIRE(r.host.busy() == 4); // four stale flushes not run yet
  REQUIRE(drv4.init());
  REQUIRE_FALSE(drv4.add(2));
  REQUIRE_FALSE(drv4.add(3));
  if (drv4.kick_needed()) r.host.on_kick();
  CHECK(r.host.counters().requests == 4); // no slot free: nothing popped yet
  r.settle();                             // stale flushes return, the device resumes
  const auto got = drv4.collect();
  CHECK(got.size() == 2);
  CHECK(r.host.counters().stale == 4);
  CHECK(r.host.counters().completed == 2);
}

TEST_CASE("a flood of queue-size requests is answered with bounded slots and no handler allocation") {
  rig<> r;
  REQUIRE(r.drv.init());
  for (int round = 0; round < 4; ++round) {
    for (std::uint32_t i = 0; i < 64; ++i) REQUIRE_FALSE(r.drv.add(i)); // 128 descriptors: a full ring
    CHECK(r.drv.add(200) == errc::no_space);
    r.kick();
    r.dev.poll();
    CHECK(r.host.busy() == 64);
    r.settle();
    CHECK(r.drv.collect().size() == 64);
  }
  CHECK(r.host.counters().completed == 256);
  CHECK(r.host.handler_fallbacks() == 0);
}

// ---- real threads ---------------------------------------------------------

/// Blocks every flush until `open` is set.
struct gate_target {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> calls{0};
  status flush() {
    calls.fetch_add(1);
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return open; });
    return {};
  }
  void release() {
    std::lock_guard lk(m);
    open = true;
    cv.notify_all();
  }
};

template <class Target> struct pool_rig {
  pool_rig() : host(dev.get_executor(), pool.get_executor(), ctl, ram.mem, target, irq, test_range) {}
  ~pool_rig() { pool.join(); }
  void run_until_idle() {
    run_until(dev, [&] { return host.busy() == 0; });
    dev.restart();
    dev.poll();
  }
  guest_ram ram;
  fv::pmem_control ctl;
  boost::asio::io_context dev;
  boost::asio::thread_pool pool{2};
  counting_notifier irq;
  Target target;
  fv::pmem_host<io_ex, pool_ex, counting_notifier> host;
  pmem_test_driver drv{ram, ctl};
};

/// The first flush blocks until released and fails; later ones succeed at once.
struct first_blocks_target {
  gate_target gate;
  std::atomic<int> calls{0};
  status flush() {
    if (calls.fetch_add(1) != 0) return {};
    gate.flush();
    return make_error_code(std::errc::io_error);
  }
};

TEST_CASE("scenario 51 flushes on a thread pool complete out of order and each gets its own result") {
  pool_rig<first_blocks_target> r;
  REQUIRE(r.drv.init());
  REQUIRE_FALSE(r.drv.add(0));
  REQUIRE_FALSE(r.drv.add(1));
  if (r.drv.kick_needed()) r.host.on_kick();
  run_until(r.dev, [&] { return r.host.counters().completed == 1; });
  auto got = r.drv.collect(); // the flush that did not block finished first
  REQUIRE(got.size() == 1);
  CHECK(got[0].ret == 0);
  CHECK(got[0].len == 4);
  const std::uint32_t fast_slot = got[0].slot;
  r.target.gate.release();
  r.run_until_idle();
  got = r.drv.collect();
  REQUIRE(got.size() == 1);
  CHECK(got[0].slot == 1 - fast_slot);
  CHECK(got[0].ret == 1);
  CHECK(got[0].len == 4);
  CHECK(response_word(r.drv, fast_slot) == 0);
  CHECK(response_word(r.drv, 1 - fast_slot) == 1);
}

TEST_CASE("anchor 13 a slow flush blocks neither the device loop nor another device") {
  guest_ram ram_a, ram_b;
  fv::pmem_control ctl_a, ctl_b;
  boost::asio::io_context dev;
  boost::asio::thread_pool pool{2};
  counting_notifier irq_a, irq_b;
  gate_target slow;
  counting_target fast;
  fv::pmem_host<io_ex, pool_ex, counting_notifier> a(dev.get_executor(), pool.get_executor(), ctl_a, ram_a.mem, slow,
                                                     irq_a, test_range);
  fv::pmem_host<io_ex, pool_ex, counting_notifier> b(dev.get_executor(), pool.get_executor(), ctl_b, ram_b.mem, fast,
                                                     irq_b, test_range);
  pmem_test_driver da(ram_a, ctl_a), db(ram_b, ctl_b);
  REQUIRE(da.init());
  REQUIRE(db.init());
  REQUIRE_FALSE(da.add(0));
  a.on_kick(); // device A's flush now blocks a pool thread
  REQUIRE_FALSE(da.add(1, 7));
  a.on_kick(); // the same device loop still answers A's other requests at once
  CHECK(da.collect().size() == 1);
  REQUIRE_FALSE(db.add(0));
  b.on_kick();
  run_until(dev, [&] { return b.busy() == 0; }); // B completes while A's flush is still blocked
  CHECK(db.collect().size() == 1);
  CHECK(da.in_flight() == 1);
  slow.release();
  run_until(dev, [&] { return a.busy() == 0; });
  CHECK(da.collect().size() == 1);
  pool.join();
}

TEST_CASE("reset races with flushes finishing on a real pool") {
  for (int iter = 0; iter < 200; ++iter) {
    pool_rig<counting_target> r;
    REQUIRE(r.drv.init());
    for (std::uint32_t i = 0; i < 8; ++i) REQUIRE_FALSE(r.drv.add(i));
    if (r.drv.kick_needed()) r.host.on_kick();
    if (iter % 2 == 0) r.dev.poll(); // some completions may already be back
    r.drv.reset_device();
    r.host.on_kick();
    REQUIRE(r.drv.init());
    for (std::uint32_t i = 0; i < 8; ++i) std::memset(r.drv.resp_host(i), 0xAA, 4);
    r.run_until_idle();
    CHECK(r.drv.used_idx() == 0);
    for (std::uint32_t i = 0; i < 8; ++i) CHECK(response_word(r.drv, i) == 0xAAAAAAAAu);
    const auto c = r.host.counters();
    CHECK(c.stale + c.completed == 8);
    REQUIRE_FALSE(r.drv.add(9));
    if (r.drv.kick_needed()) r.host.on_kick();
    r.run_until_idle();
    CHECK(r.drv.collect().size() == 1);
  }
}

TEST_CASE("flush delay knob delays but still answers") {
  pool_rig<counting_target> r;
  REQUIRE(r.drv.init());
  r.host.set_flush_delay(std::chrono::milliseconds(2));
  REQUIRE_FALSE(r.drv.add(0));
  if (r.drv.kick_needed()) r.host.on_kick();
  r.run_until_idle();
  const auto got = r.drv.collect();
  REQUIRE(got.size() == 1);
  CHECK(got[0].ret == 0);
}

} // TEST_SUITE
