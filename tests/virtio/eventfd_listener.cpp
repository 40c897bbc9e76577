#include <flushkit/virtio/eventfd_listener.hpp>

#include <flushkit/virtio/eventfd_notifier.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

namespace fv = flushkit::virtio;
using listener_t = fv::eventfd_listener<>;

struct channel {
  channel() {
    flushkit::status st;
    fd = fv::make_eventfd(st);
    REQUIRE(fd >= 0);
  }
  ~channel() { ::close(fd); }
  int fd = -1;
};

struct target {
  int calls = 0;
  listener_t* stop_from_inside = nullptr;
  static void fn(void* t) {
    auto* k = static_cast<target*>(t);
    ++k->calls;
    if (k->stop_from_inside != nullptr) k->stop_from_inside->stop();
  }
};

struct error_log {
  int calls = 0;
  flushkit::status last{};
  static void fn(void* ctx, const flushkit::status& st) {
    auto* self = static_cast<error_log*>(ctx);
    ++self->calls;
    self->last = st;
  }
};

void stop_and_drain(boost::asio::io_context& io, listener_t& l) {
  l.stop();
  io.restart();
  while (l.armed()) io.run_one();
}

} // namespace

TEST_SUITE("virtio/eventfd_listener") {

TEST_CASE("a notification runs the target on the event loop and the read is re-armed") {
  boost::asio::io_context io;
  channel ch;
  target t;
  listener_t l(io.get_executor(), &target::fn, &t);
  REQUIRE_FALSE(l.open(ch.fd));
  l.start();
  CHECK(t.calls == 0);
  CHECK(l.armed());
  fv::eventfd_notifier n(ch.fd);
  n.notify();
  io.run_one();
  CHECK(t.calls == 1);
  CHECK(l.armed());
  n.notify();
  io.run_one();
  CHECK(t.calls == 2);
  CHECK(l.notifications() == 2);
  stop_and_drain(io, l);
  CHECK(t.calls == 2);
  CHECK(l.handler_fallbacks() == 0);
}

TEST_CASE("notifications written before the read are merged into one call") {
  boost::asio::io_context io;
  channel ch;
  target t;
  listener_t l(io.get_executor(), &target::fn, &t);
  REQUIRE_FALSE(l.open(ch.fd));
  fv::eventfd_notifier n(ch.fd);
  for (int i = 0; i < 5; ++i) n.notify();
  l.start();
  io.run_one();
  CHECK(t.calls == 1);
  CHECK(l.wakeups() == 1);
  CHECK(l.notifications() == 5);
  stop_and_drain(io, l);
}

TEST_CASE("stop cancels the pending read without calling the target") {
  boost::asio::io_context io;
  channel ch;
  target t;
  listener_t l(io.get_executor(), &target::fn, &t);
  REQUIRE_FALSE(l.open(ch.fd));
  l.start();
  l.stop();
  CHECK_FALSE(l.is_open());
  io.run();
  CHECK_FALSE(l.armed());
  CHECK(t.calls == 0);
  fv::eventfd_notifier n(ch.fd); // the caller's descriptor is still open
  n.notify();
  CHECK(n.failures() == 0);
}

TEST_CASE("the target may stop the listener") {
  boost::asio::io_context io;
  channel ch;
  target t;
  listener_t l(io.get_executor(), &target::fn, &t);
  t.stop_from_inside = &l;
  REQUIRE_FALSE(l.open(ch.fd));
  l.start();
  fv::eventfd_notifier n(ch.fd);
  n.notify();
  io.run(); // returns: nothing armed any more
  CHECK(t.calls == 1);
  CHECK_FALSE(l.armed());
}

TEST_CASE("open twice is rejected and a bad descriptor reports the system error") {
  boost::asio::io_context io;
  channel ch;
  target t;
  listener_t l(io.get_executor(), &target::fn, &t);
  CHECK(l.open(-1) == std::errc::bad_file_descriptor);
  REQUIRE_FALSE(l.open(ch.fd));
  CHECK(l.open(ch.fd) == flushkit::errc::invalid_request);
  l.stop();
}

TEST_CASE("a read error stops the listener and is reported through error() and the callback") {
  boost::asio::io_context io;
  channel ch;
  target t;
  error_log errors;
  listener_t l(io.get_executor(), &target::fn, &t, &error_log::fn, &errors);
  // The listener reads its own duplicate of the eventfd: the lowest free descriptor.
  const int lowest = ::fcntl(ch.fd, F_DUPFD_CLOEXEC, 0);
  REQUIRE(lowest >= 0);
  ::close(lowest);
  REQUIRE_FALSE(l.open(ch.fd));
  REQUIRE(::fcntl(lowest, F_GETFD) >= 0);
  l.start();
  fv::eventfd_notifier n(ch.fd);
  n.notify();
  io.run_one();
  REQUIRE(t.calls == 1);
  CHECK_FALSE(l.error());

  // Replace the listener's descriptor by a pipe's write end: its next read fails with EBADF.
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  REQUIRE(::dup2(pipe_fds[1], lowest) == lowest);
  n.notify();
  io.run(); // returns: the failed read is not re-armed
  CHECK(t.calls == 1);
  CHECK_FALSE(l.armed());
  CHECK_FALSE(l.is_open());
  CHECK(l.error() == std::errc::bad_file_descriptor);
  CHECK(errors.calls == 1);
  CHECK(errors.last == l.error());
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST_CASE("end of file stops the listener with io_error and stop() reports nothing") {
  boost::asio::io_context io;
  target t;
  error_log errors;
  listener_t l(io.get_executor(), &target::fn, &t);
  l.set_error_handler(&error_log::fn, &errors);
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  ::close(pipe_fds[1]); // a read end whose writer is gone reads end of file
  REQUIRE_FALSE(l.open(pipe_fds[0]));
  l.start();
  io.run();
  CHECK(t.calls == 0);
  CHECK(l.error() == flushkit::errc::io_error);
  CHECK(errors.calls == 1);

  channel ch; // a clean stop is not an error, and open() forgets the last one
  REQUIRE_FALSE(l.open(ch.fd));
  CHECK_FALSE(l.error());
  l.start();
  stop_and_drain(io, l);
  CHECK_FALSE(l.error());
  CHECK(errors.calls == 1);
  ::close(pipe_fds[0]);
}

TEST_CASE("notifications from other threads are all received") {
  for (int iter = 0; iter < 20; ++iter) {
    boost::asio::io_context io;
    channel ch;
    target t;
    listener_t l(io.get_executor(), &target::fn, &t);
    REQUIRE_FALSE(l.open(ch.fd));
    l.start();
    fv::eventfd_notifier n(ch.fd);
    std::vector<std::thread> ts;
    for (int k = 0; k < 3; ++k)
      ts.emplace_back([&] {
        for (int i = 0; i < 100; ++i) n.notify();
      });
    for (auto& th : ts) th.join();
    while (l.notifications() < 300) io.run_one();
    CHECK(l.notifications() == 300);
    CHECK(t.calls >= 1);
    CHECK(static_cast<std::uint64_t>(t.calls) == l.wakeups());
    stop_and_drain(io, l);
    CHECK(l.handler_fallbacks() == 0);
  }
}

} // TEST_SUITE
