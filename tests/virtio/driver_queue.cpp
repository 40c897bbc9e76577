#include <flushkit/virtio/driver_queue.hpp>

#include <flushkit/virtio/device_queue.hpp>

#include "support/virtio_guest.hpp"

#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fv = flushkit::virtio;
using flushkit::errc;
using flushkit_test::guest_ram;
using flushkit_test::raw_guest;

namespace {

// Per-request guest buffers: a 4-byte request and a 4-byte response.
struct slot {
  std::uint64_t req, resp;
};

// A driver queue and a device queue on one guest ring (in-process round trip).
struct pair_rig {
  explicit pair_rig(std::uint32_t n = 8, fv::ring_features f = {true, false})
      : a(flushkit_test::ring_at(ram, n)), q(n), dq(n) {
    REQUIRE_FALSE(q.configure(ram.mem, a, f));
    REQUIRE_FALSE(dq.configure(ram.mem, a, f));
  }
  slot buffers(std::uint32_t i) const { return {ram.data(64u * i), ram.data(64u * i + 32)}; }
  flushkit::status add(std::uint32_t i, void* token, std::uint32_t resp_len = 4) {
    const slot s = buffers(i);
    const fv::buffer out[] = {{s.req, 4}};
    const fv::buffer in[] = {{s.resp, resp_len}};
    return q.add(out, in, token);
  }
  std::uint32_t resp_of(std::uint32_t i) {
    std::uint32_t v;
    std::memcpy(&v, ram.host(buffers(i).resp), 4);
    return v;
  }
  // Device: pops every chain, answers each with its head (4 bytes) and pushes it.
  std::vector<fv::chain_id> pop_all() {
    std::vector<fv::chain_id> ids;
    REQUIRE_FALSE(dq.process_all([&](const fv::device_chain& c) { ids.push_back(c.id()); }));
    return ids;
  }

  guest_ram ram;
  fv::ring_addresses a;
  fv::driver_queue q;
  fv::device_queue dq;
};

// Expects get_used to break the queue with `why`, and io_error to stay.
void expect_io_error(fv::driver_queue& q, const char* why) {
  const fv::used_result r = q.get_used();
  CHECK(r.error == errc::io_error);
  CHECK(r.token == nullptr);
  REQUIRE(q.broken());
  CHECK(std::string(q.broken_reason()).find(why) != std::string::npos);
  CHECK(q.get_used().error == errc::io_error);
  int t = 0;
  const fv::buffer b[] = {{0x100000 + 0x80000, 4}};
  CHECK(q.add(b, {}, &t) == errc::io_error);
  CHECK_FALSE(q.kick_prepare());
}

} // namespace

TEST_SUITE("virtio/driver_queue") {

TEST_CASE("add writes out then in descriptors and returns no_space when descriptors run out") {
  pair_rig r(4);
  int t[3] = {};
  CHECK_FALSE(r.add(0, &t[0]));
  CHECK_FALSE(r.add(1, &t[1]));
  CHECK(r.q.num_free() == 0);
  CHECK(r.add(2, &t[2]) == errc::no_space);
  CHECK(r.q.in_flight() == 2);
  const std::vector<fv::chain_id> ids = r.pop_all();
  REQUIRE(ids.size() == 2);
  CHECK_FALSE(r.dq.push_used(ids[0], 4));
  CHECK(r.add(2, &t[2]) == errc::no_space); // freed only when the driver collects it
  CHECK(r.q.get_used().token == &t[0]);
  CHECK_FALSE(r.add(2, &t[2]));
  CHECK(r.q.num_free() == 0);
}

TEST_CASE("add rejects a null token an empty or too long chain and zero-length buffers") {
  pair_rig r(4);
  int t = 0;
  const fv::buffer b[] = {{r.ram.data(0), 4}, {r.ram.data(8), 4}, {r.ram.data(16), 4}};
  const fv::buffer z[] = {{r.ram.data(0), 0}};
  CHECK(r.q.add(b, {}, nullptr) == errc::invalid_request);
  CHECK(r.q.add({}, {}, &t) == errc::invalid_request);
  CHECK(r.q.add(b, b, &t) == errc::invalid_request); // 6 > 4
  CHECK(r.q.add(z, {}, &t) == errc::invalid_request);
  CHECK(r.q.num_free() == 4);
  fv::driver_queue unconfigured(4);
  CHECK(unconfigured.add(b, {}, &t) == errc::invalid_request);
  CHECK(unconfigured.get_used().error == errc::invalid_request);
}

TEST_CASE("round trip of many requests returns every token with its own response") {
  pair_rig r(8);
  int tokens[4] = {};
  for (std::uint32_t round = 0; round < 50; ++round) {
    for (std::uint32_t i = 0; i < 4; ++i) {
      const std::uint32_t v = round * 100 + i;
      std::memcpy(r.ram.host(r.buffers(i).req), &v, 4);
      REQUIRE_FALSE(r.add(i, &tokens[i]));
    }
    CHECK(r.add(4, &tokens[0]) == errc::no_space); // 8 descriptors = 4 two-buffer chains
    REQUIRE_FALSE(r.dq.process_all([&](const fv::device_chain& c) {
      std::array<std::byte, 4> req{};
      REQUIRE(r.dq.read_chain(c.buffers(), req) == 4);
      std::uint32_t v;
      std::memcpy(&v, req.data(), 4);
      v += 1000;
      std::memcpy(req.data(), &v, 4);
      REQUIRE(r.dq.write_chain(c.buffers(), req) == 4);
      REQUIRE_FALSE(r.dq.push_used(c.id(), 4));
    }));
    for (std::uint32_t i = 0; i < 4; ++i) {
      const fv::used_result u = r.q.get_used();
      REQUIRE_FALSE(u.error);
      CHECK(u.token == &tokens[i]); // in-order device: FIFO
      CHECK(u.len == 4);
      CHECK(r.resp_of(i) == round * 100 + i + 1000);
    }
    CHECK(r.q.get_used().token == nullptr);
    CHECK(r.q.num_free() == 8);
  }
}

TEST_CASE("scenario 51 out of order completions are matched by token") {
  pair_rig r(8);
  int tokens[3] = {};
  std::vector<fv::chain_id> ids;
  std::vector<fv::chain_buffer> resp_buf;
  for (std::uint32_t i = 0; i < 3; ++i) REQUIRE_FALSE(r.add(i, &tokens[i]));
  REQUIRE_FALSE(r.dq.process_all([&](const fv::device_chain& c) {
    ids.push_back(c.id());
    resp_buf.push_back(c.writable()[0]);
  }));
  REQUIRE(ids.size() == 3);
  const int order[3] = {2, 0, 1};
  for (int k : order) { // each answer is its own index + 10
    const std::uint32_t v = static_cast<std::uint32_t>(k + 10);
    std::array<std::byte, 4> bytes;
    std::memcpy(bytes.data(), &v, 4);
    const fv::chain_buffer b[] = {resp_buf[static_cast<std::size_t>(k)]};
    REQUIRE(r.dq.write_chain(b, bytes) == 4);
    REQUIRE_FALSE(r.dq.push_used(ids[static_cast<std::size_t>(k)], 4));
  }
  for (int k : order) {
    const fv::used_result u = r.q.get_used();
    REQUIRE_FALSE(u.error);
    CHECK(u.token == &tokens[k]);
    CHECK(r.resp_of(static_cast<std::uint32_t>(k)) == static_cast<std::uint32_t>(k + 10));
  }
  CHECK(r.q.in_flight() == 0);
}

TEST_CASE("a short used len is returned so the caller never reads bytes past it") {
  pair_rig r;
  std::memset(r.ram.host(r.buffers(0).resp), 0xAA, 4); // poison
  int t = 0;
  REQUIRE_FALSE(r.add(0, &t));
  const std::vector<fv::chain_id> ids = r.pop_all();
  REQUIRE_FALSE(r.dq.push_used(ids[0], 2));
  const fv::used_result u = r.q.get_used();
  REQUIRE_FALSE(u.error);
  CHECK(u.token == &t);
  CHECK(u.len == 2); // < sizeof(resp): the caller fails the request with io_error
}

TEST_CASE("hostile 14 used id out of range breaks the driver queue") {
  pair_rig r;
  int t = 0;
  REQUIRE_FALSE(r.add(0, &t));
  raw_guest dev(r.ram, r.a);
  dev.used = 0;
  dev.push_used_raw(8, 0);
  expect_io_error(r.q, "used id out of range");
  CHECK(r.q.detach_unused() == &t); // the outstanding token comes back
  CHECK(r.q.detach_unused() == nullptr);
}

TEST_CASE("hostile 14 used id not in flight and duplicate completion break the driver queue") {
  SUBCASE("never added") {
    pair_rig r;
    int t = 0;
    REQUIRE_FALSE(r.add(0, &t)); // head 0 with descriptors 0 and 1
    fv::split_ring ring;
    REQUIRE_FALSE(fv::split_ring::map(r.ram.mem, r.a, ring));
    fv::detail::store_le<std::uint32_t>(ring.used_id(0), 1); // the second descriptor, not a head
    fv::detail::store_le<std::uint16_t>(ring.used_idx(), 1, std::memory_order_release);
    expect_io_error(r.q, "not a head in flight");
  }
  SUBCASE("duplicate") {
    pair_rig r;
    int t1 = 0, t2 = 0;
    REQUIRE_FALSE(r.add(0, &t1));
    REQUIRE_FALSE(r.add(1, &t2));
    fv::split_ring ring;
    REQUIRE_FALSE(fv::split_ring::map(r.ram.mem, r.a, ring));
    for (std::uint32_t k = 0; k < 2; ++k) fv::detail::store_le<std::uint32_t>(ring.used_id(k), 0);
    fv::detail::store_le<std::uint16_t>(ring.used_idx(), 2, std::memory_order_release);
    CHECK(r.q.get_used().token == &t1);
    expect_io_error(r.q, "not a head in flight");
    CHECK(r.q.detach_unused() == &t2);
    CHECK(r.q.detach_unused() == nullptr);
  }
}

TEST_CASE("hostile 14 used len larger than the in buffer and a runaway used idx break the queue") {
  SUBCASE("len") {
    pair_rig r;
    int t = 0;
    REQUIRE_FALSE(r.add(0, &t));
    raw_guest dev(r.ram, r.a);
    dev.push_used_raw(0, 5);
    expect_io_error(r.q, "used len larger");
  }
  SUBCASE("used idx past the chains in flight") {
    pair_rig r;
    int t = 0;
    REQUIRE_FALSE(r.add(0, &t));
    fv::split_ring ring;
    REQUIRE_FALSE(fv::split_ring::map(r.ram.mem, r.a, ring));
    fv::detail::store_le<std::uint16_t>(ring.used_idx(), 2, std::memory_order_release);
    expect_io_error(r.q, "used idx moved past");
  }
}

TEST_CASE("mark_broken detach_unused reset and configure start a new generation") {
  pair_rig r(4);
  int t[2] = {};
  REQUIRE_FALSE(r.add(0, &t[0]));
  REQUIRE_FALSE(r.add(1, &t[1]));
  r.q.mark_broken("notify failed");
  r.q.mark_broken("second reason ignored");
  CHECK(std::string(r.q.broken_reason()) == "notify failed");
  CHECK(r.add(2, &t[0]) == errc::io_error);
  void* a = r.q.detach_unused();
  void* b = r.q.detach_unused();
  CHECK(r.q.detach_unused() == nullptr);
  CHECK(((a == &t[0] && b == &t[1]) || (a == &t[1] && b == &t[0])));
  CHECK(r.q.num_free() == 4);
  const std::uint64_t gen = r.q.generation();
  r.q.reset();
  r.dq.reset();
  CHECK(r.q.generation() == gen + 1);
  CHECK_FALSE(r.q.broken());
  REQUIRE_FALSE(r.q.configure(r.ram.mem, r.a, {true, false}));
  REQUIRE_FALSE(r.dq.configure(r.ram.mem, r.a, {true, false}));
  REQUIRE_FALSE(r.add(0, &t[0]));
  const std::vector<fv::chain_id> ids = r.pop_all();
  REQUIRE(ids.size() == 1);
  REQUIRE_FALSE(r.dq.push_used(ids[0], 4));
  CHECK(r.q.get_used().token == &t[0]);
}

TEST_CASE("kick_prepare follows avail_event with EVENT_IDX and NO_NOTIFY without") {
  SUBCASE("event idx") {
    pair_rig r(8, {true, false});
    int t = 0;
    CHECK_FALSE(r.q.kick_prepare()); // nothing added
    REQUIRE_FALSE(r.add(0, &t));
    CHECK(r.q.kick_prepare()); // avail_event 0 crossed by 0 -> 1
    REQUIRE_FALSE(r.add(1, &t));
    CHECK_FALSE(r.q.kick_prepare()); // device has not asked again (avail_event still 0)
    CHECK(r.pop_all().size() == 2); // process_all sets avail_event = 2
    REQUIRE_FALSE(r.add(2, &t));
    CHECK(r.q.kick_prepare());
  }
  SUBCASE("flags") {
    pair_rig r(8, {false, false});
    int t = 0;
    REQUIRE_FALSE(r.add(0, &t));
    CHECK(r.q.kick_prepare());
    r.dq.disable_notifications();
    REQUIRE_FALSE(r.add(1, &t));
    CHECK_FALSE(r.q.kick_prepare());
  }
}

TEST_CASE("callbacks publish used_event and enable_callbacks reports pending work") {
  pair_rig r(8, {true, false});
  int t = 0;
  REQUIRE_FALSE(r.add(0, &t));
  REQUIRE_FALSE(r.add(1, &t));
  const std::vector<fv::chain_id> ids = r.pop_all();
  REQUIRE_FALSE(r.dq.push_used(ids[0], 4));
  CHECK(r.dq.should_notify()); // used_event 0
  CHECK_FALSE(r.q.enable_callbacks()); // one pending
  REQUIRE(r.q.get_used().token == &t);
  CHECK(fv::detail::load_le<std::uint16_t>(r.q.ring().used_event()) == 1);
  CHECK(r.q.enable_callbacks());
  r.q.disable_callbacks();
  REQUIRE_FALSE(r.dq.push_used(ids[1], 4));
  REQUIRE(r.q.get_used().token == &t);
  CHECK(fv::detail::load_le<std::uint16_t>(r.q.ring().used_event()) == 1); // not advanced while disabled
}

TEST_CASE("scenario 52 threaded round trip through a memfd mapped twice orders len and response before idx") {
  // One memfd, two mappings at different host addresses: the driver uses one,
  // the device the other, exactly as two processes would.
  const int fd = ::memfd_create("flushkit-ring", 0);
  REQUIRE(fd >= 0);
  const std::size_t size = 1 << 20;
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  void* pd = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  void* ph = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  REQUIRE(pd != MAP_FAILED);
  REQUIRE(ph != MAP_FAILED);
  const std::uint64_t base = 0x40000000;
  fv::guest_memory guest_view(base, pd, size), host_view(base, ph, size);
  fv::ring_addresses a;
  REQUIRE_FALSE(fv::legacy_layout(16, base, 4096, a));
  fv::driver_queue q(16);
  fv::device_queue dq(16);
  REQUIRE_FALSE(q.configure(guest_view, a, {true, false}));
  REQUIRE_FALSE(dq.configure(host_view, a, {true, false}));

  constexpr std::uint32_t total = 20000;
  std::atomic<bool> done{false};
  std::atomic<int> device_errors{0};
  std::thread device([&] {
    while (!done.load(std::memory_order_acquire)) {
      const flushkit::status st = dq.process_all([&](const fv::device_chain& c) {
        std::array<std::byte, 4> req{};
        if (dq.read_chain(c.buffers(), req) != 4) ++device_errors;
        std::uint32_t v;
        std::memcpy(&v, req.data(), 4);
        v = ~v; // the response is the complement of the request
        std::array<std::byte, 4> resp;
        std::memcpy(resp.data(), &v, 4);
        if (dq.write_chain(c.buffers(), resp) != 4) ++device_errors;
        if (dq.push_used(c.id(), 4)) ++device_errors;
      });
      if (st) {
        ++device_errors;
        return;
      }
      (void)dq.should_notify();
      std::this_thread::yield();
    }
  });
  std::mutex lock; // the caller's lock around the driver queue
  std::uint32_t sent = 0, received = 0;
  std::vector<std::uint32_t> slot_value(16);
  while (received < total) {
    std::lock_guard<std::mutex> g(lock);
    while (sent < total) {
      const std::uint32_t s = sent % 16;
      auto* hreq = static_cast<std::byte*>(pd) + 0x80000 + 64 * s;
      if (q.num_free() < 2 || slot_value[s] != 0) break;
      std::memcpy(hreq, &sent, 4);
      std::memset(hreq + 32, 0, 4);
      slot_value[s] = sent + 1;
      const fv::buffer out[] = {{base + 0x80000 + 64 * s, 4}};
      const fv::buffer in[] = {{base + 0x80000 + 64 * s + 32, 4}};
      REQUIRE_FALSE(q.add(out, in, &slot_value[s]));
      ++sent;
      (void)q.kick_prepare();
    }
    for (fv::used_result u = q.get_used(); u.token != nullptr; u = q.get_used()) {
      REQUIRE_FALSE(u.error);
      REQUIRE(u.len == 4);
      auto* val = static_cast<std::uint32_t*>(u.token);
      const auto s = static_cast<std::uint32_t>(val - slot_value.data());
      std::uint32_t resp;
      std::memcpy(&resp, static_cast<std::byte*>(pd) + 0x80000 + 64 * s + 32, 4);
      REQUIRE(resp == ~(*val - 1));
      *val = 0;
      ++received;
    }
    if (q.broken() || device_errors.load() != 0) break;
  }
  done.store(true, std::memory_order_release);
  device.join();
  CHECK(device_errors.load() == 0);
  CHECK(received == total);
  CHECK(q.in_flight() == 0);
  CHECK_FALSE(dq.broken());
  ::munmap(pd, size);
  ::munmap(ph, size);
}

} // TEST_SUITE
