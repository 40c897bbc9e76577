#include <flushkit/virtio/notifier.hpp>

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace {

namespace fv = flushkit::virtio;
using notifier_t = fv::inproc_notifier<boost::asio::io_context::executor_type>;
static_assert(fv::notifier<notifier_t>);

struct counter {
  std::atomic<int> calls{0};
  notifier_t* self = nullptr;
  int renotify = 0; // notify again from inside the target this many times
  static void fn(void* c) {
    auto* k = static_cast<counter*>(c);
    k->calls.fetch_add(1);
    if (k->renotify > 0) {
      --k->renotify;
      k->self->notify();
    }
  }
};

} // namespace

TEST_SUITE("virtio/notifier") {

TEST_CASE("inproc_notifier runs the target on the executor, not inline") {
  boost::asio::io_context io;
  counter c;
  notifier_t n(io.get_executor(), &counter::fn, &c);
  n.notify();
  CHECK(c.calls.load() == 0);
  CHECK(io.poll() == 1);
  CHECK(c.calls.load() == 1);
  CHECK(n.delivered() == 1);
}

TEST_CASE("inproc_notifier merges notifications made before the target runs") {
  boost::asio::io_context io;
  counter c;
  notifier_t n(io.get_executor(), &counter::fn, &c);
  for (int i = 0; i < 5; ++i) n.notify();
  io.poll();
  CHECK(c.calls.load() == 1);
  CHECK(n.delivered() == 1);
}

TEST_CASE("a notification made while the target runs runs it again") {
  boost::asio::io_context io;
  counter c;
  notifier_t n(io.get_executor(), &counter::fn, &c);
  c.self = &n;
  c.renotify = 2;
  n.notify();
  io.poll();
  CHECK(c.calls.load() == 3);
}

TEST_CASE("notifications from many threads are never lost") {
  for (int iter = 0; iter < 50; ++iter) {
    boost::asio::io_context io;
    std::atomic<int> produced{0};
    struct seen_t {
      std::atomic<int>* produced;
      int last = 0;
      static void fn(void* s) {
        auto* k = static_cast<seen_t*>(s);
        k->last = k->produced->load();
      }
    } seen{&produced};
    notifier_t n(io.get_executor(), &seen_t::fn, &seen);
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < 200; ++i) {
          produced.fetch_add(1);
          n.notify();
        }
      });
    auto guard = boost::asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    for (auto& t : ts) t.join();
    guard.reset();
    runner.join();
    io.restart();
    io.poll();
    // the target ran after the last increment: it saw every item produced
    CHECK(seen.last == 600);
    CHECK(n.delivered() >= 1);
  }
}

} // TEST_SUITE
