#include <flushkit/virtio/shm_transport.hpp>

#include "support/pmem_test_driver.hpp"

#include <flushkit/virtio/eventfd_listener.hpp>
#include <flushkit/virtio/eventfd_notifier.hpp>
#include <flushkit/virtio/pmem_host.hpp>

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstring>

#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fv = flushkit::virtio;
using ex_t = boost::asio::io_context::executor_type;
using host_t = fv::pmem_host<ex_t, ex_t, fv::eventfd_notifier>;

struct ok_target {
  int calls = 0;
  flushkit::status flush() {
    ++calls;
    return {};
  }
};

struct eventfds {
  eventfds() {
    flushkit::status st;
    kick = fv::make_eventfd(st);
    irq = fv::make_eventfd(st);
    REQUIRE(kick >= 0);
    REQUIRE(irq >= 0);
  }
  ~eventfds() {
    ::close(kick);
    ::close(irq);
  }
  int kick = -1, irq = -1;
};

/// Waits (poll, bounded) for the interrupt eventfd and consumes it.
bool wait_interrupt(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return false;
  std::uint64_t v = 0;
  return ::read(fd, &v, sizeof v) == static_cast<ssize_t>(sizeof v);
}

/// The device process's side: host + kick listener on one io_context.
struct device_side {
  device_side(const fv::shm_transport& t, const eventfds& fds)
      : irq(fds.irq), host(io.get_executor(), io.get_executor(), t.control(), t.memory(), target, irq,
                           fv::pmem_config{0x1'0000'0000, 1 << 20}),
        kick(io.get_executor(), &host_t::kick_entry, &host) {
    REQUIRE_FALSE(kick.open(fds.kick));
    kick.start();
  }
  ~device_side() {
    kick.stop();
    io.restart();
    while (kick.armed()) io.run_one();
  }
  boost::asio::io_context io;
  ok_target target;
  fv::eventfd_notifier irq;
  host_t host;
  fv::eventfd_listener<> kick;
};

} // namespace

TEST_SUITE("virtio/shm_transport") {

TEST_CASE("create lays out header control block and guest RAM") {
  fv::shm_transport t;
  REQUIRE_FALSE(t.create(100000, 0x200000));
  REQUIRE(t.valid());
  CHECK(t.ram_size() % 4096 == 0);
  CHECK(t.ram_size() >= 100000);
  CHECK(t.guest_base() == 0x200000);
  CHECK(t.memory().translate(0x200000, t.ram_size()) == t.ram());
  CHECK(t.control().status.load() == 0);
  CHECK(t.fd() >= 0);
}

TEST_CASE("two mappings of one memfd share control and RAM at different host addresses") {
  fv::shm_transport a, b;
  REQUIRE_FALSE(a.create(1 << 16));
  REQUIRE_FALSE(b.attach(a.fd()));
  CHECK(a.ram() != b.ram());
  CHECK(&a.control() != &b.control());
  CHECK(b.ram_size() == a.ram_size());
  CHECK(b.guest_base() == a.guest_base());
  a.control().queue_desc.store(0x1234);
  CHECK(b.control().queue_desc.load() == 0x1234);
  std::byte* pa = a.memory().translate(a.guest_base() + 512, 8);
  std::byte* pb = b.memory().translate(b.guest_base() + 512, 8);
  REQUIRE(pa != nullptr);
  REQUIRE(pb != nullptr);
  CHECK(pa != pb);
  std::memcpy(pa, "guestmem", 8);
  CHECK(std::memcmp(pb, "guestmem", 8) == 0);
}

TEST_CASE("attach rejects files that are not transport files") {
  fv::shm_transport t;
  CHECK(t.attach(-1) == std::errc::bad_file_descriptor);
  const int small = ::memfd_create("small", MFD_CLOEXEC);
  REQUIRE(small >= 0);
  REQUIRE(::ftruncate(small, 100) == 0);
  CHECK(t.attach(small) == flushkit::errc::invalid_request);
  REQUIRE(::ftruncate(small, 8192) == 0); // zeros: wrong magic
  CHECK(t.attach(small) == flushkit::errc::invalid_request);
  ::close(small);

  fv::shm_transport good;
  REQUIRE_FALSE(good.create(1 << 16));
  REQUIRE(::ftruncate(good.fd(), 4096 + 4096) == 0); // RAM shorter than the header says
  CHECK(t.attach(good.fd()) == flushkit::errc::invalid_request);
  CHECK_FALSE(t.valid());
  CHECK(fv::shm_transport().create(0) == flushkit::errc::invalid_request);
  CHECK(fv::shm_transport().create(4096, 8) == flushkit::errc::invalid_request);
}

TEST_CASE("moved transports keep the mapping") {
  fv::shm_transport a;
  REQUIRE_FALSE(a.create(4096));
  a.control().queue_size.store(64);
  fv::shm_transport b(std::move(a));
  CHECK_FALSE(a.valid());
  REQUIRE(b.valid());
  CHECK(b.control().queue_size.load() == 64);
}

TEST_CASE("device and driver on two mappings exchange a flush through eventfds") {
  fv::shm_transport dev_map, drv_map;
  REQUIRE_FALSE(dev_map.create(1 << 20));
  REQUIRE_FALSE(drv_map.attach(dev_map.fd()));
  eventfds fds;
  device_side dev(dev_map, fds);
  flushkit_test::pmem_test_driver drv(drv_map.memory(), drv_map.guest_base(), drv_map.ram_size(), drv_map.control());
  REQUIRE(drv.init());
  fv::eventfd_notifier kick(fds.kick);
  for (std::uint32_t i = 0; i < 3; ++i) {
    REQUIRE_FALSE(drv.add(i, i == 1 ? 5u : 0u));
    if (drv.kick_needed()) kick.notify();
    while (dev.host.counters().completed < i + 1) dev.io.run_one();
    CHECK(wait_interrupt(fds.irq, 0));
    const auto got = drv.collect();
    REQUIRE(got.size() == 1);
    CHECK(got[0].slot == i);
    CHECK(got[0].len == 4);
    CHECK(got[0].ret == (i == 1 ? 1u : 0u));
  }
  CHECK(dev.target.calls == 2);
  CHECK(dev.kick.handler_fallbacks() == 0);
}

TEST_CASE("device and driver in two processes after fork") {
  fv::shm_transport dev_map;
  REQUIRE_FALSE(dev_map.create(1 << 20));
  eventfds fds;
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) { // driver process: re-maps the memfd itself
    fv::shm_transport mine;
    if (mine.attach(dev_map.fd())) ::_exit(10);
    flushkit_test::pmem_test_driver drv(mine.memory(), mine.guest_base(), mine.ram_size(), mine.control());
    if (!drv.init()) ::_exit(11);
    fv::eventfd_notifier kick(fds.kick);
    for (std::uint32_t i = 0; i < 4; ++i) {
      if (drv.add(i)) ::_exit(12);
      if (drv.kick_needed()) kick.notify();
      if (!wait_interrupt(fds.irq, 4000)) ::_exit(13);
      const auto got = drv.collect();
      if (got.size() != 1 || got[0].slot != i || got[0].len != 4 || got[0].ret != 0) ::_exit(14);
    }
    ::_exit(0);
  }
  device_side dev(dev_map, fds);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  int wstatus = 0;
  pid_t done = 0;
  while (done == 0 && std::chrono::steady_clock::now() < deadline) {
    dev.io.restart();
    dev.io.run_for(std::chrono::milliseconds(5));
    done = ::waitpid(child, &wstatus, WNOHANG);
  }
  if (done == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &wstatus, 0);
  }
  REQUIRE(done == child);
  CHECK(WIFEXITED(wstatus));
  CHECK(WEXITSTATUS(wstatus) == 0);
  CHECK(dev.target.calls == 4);
  CHECK(dev.host.counters().completed == 4);
}

} // TEST_SUITE
