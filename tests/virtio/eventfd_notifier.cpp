#include <flushkit/virtio/eventfd_notifier.hpp>

#include <doctest/doctest.h>

#include <cerrno>
#include <cstdint>
#include <thread>
#include <vector>

#include <unistd.h>

namespace fv = flushkit::virtio;
static_assert(fv::notifier<fv::eventfd_notifier>);

namespace {
std::uint64_t drain(int fd) {
  std::uint64_t v = 0;
  return ::read(fd, &v, sizeof v) == static_cast<ssize_t>(sizeof v) ? v : 0;
}
} // namespace

TEST_SUITE("virtio/eventfd_notifier") {

TEST_CASE("make_eventfd gives a non-blocking eventfd with counter 0") {
  flushkit::status st;
  const int fd = fv::make_eventfd(st);
  REQUIRE(fd >= 0);
  CHECK_FALSE(st);
  std::uint64_t v = 0;
  CHECK(::read(fd, &v, sizeof v) == -1);
  CHECK(errno == EAGAIN);
  ::close(fd);
}

TEST_CASE("each notify adds 1 to the counter") {
  flushkit::status st;
  const int fd = fv::make_eventfd(st);
  REQUIRE(fd >= 0);
  fv::eventfd_notifier n(fd);
  n.notify();
  n.notify();
  n.notify();
  CHECK(drain(fd) == 3);
  CHECK(n.sent() == 3);
  CHECK(n.failures() == 0);
  CHECK(drain(fd) == 0);
  ::close(fd);
}

TEST_CASE("a full counter counts as delivered") {
  flushkit::status st;
  const int fd = fv::make_eventfd(st);
  REQUIRE(fd >= 0);
  const std::uint64_t almost = 0xFFFFFFFFFFFFFFFEull;
  REQUIRE(::write(fd, &almost, sizeof almost) == 8);
  fv::eventfd_notifier n(fd);
  n.notify(); // EAGAIN: a wake-up is pending anyway
  CHECK(n.sent() == 1);
  CHECK(n.failures() == 0);
  CHECK(drain(fd) == almost);
  ::close(fd);
}

TEST_CASE("a bad descriptor is counted as a failure") {
  fv::eventfd_notifier n(-1);
  n.notify();
  CHECK(n.sent() == 0);
  CHECK(n.failures() == 1);
}

TEST_CASE("concurrent notifies all reach the counter") {
  flushkit::status st;
  const int fd = fv::make_eventfd(st);
  REQUIRE(fd >= 0);
  fv::eventfd_notifier n(fd);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 500; ++i) n.notify();
    });
  for (auto& t : ts) t.join();
  CHECK(drain(fd) == 2000);
  CHECK(n.sent() == 2000);
  ::close(fd);
}

} // TEST_SUITE
