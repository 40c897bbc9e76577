#include <flushkit/testing/crash_checker.hpp>

#include <flushkit/core/region.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/testing/volatile_cache.hpp>

#include <boost/asio/io_context.hpp>

#include "support/crash_workloads.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream> // doctest prints a status through operator<<
#include <string>
#include <vector>

namespace ft = flushkit::testing;
using flushkit::req_flags;
using flushkit::test::print_examples;
using flushkit::test::run_small;

namespace {

// A broken provider: acknowledges every flush without making anything durable.
struct lying_cache {
  ft::volatile_cache* cache;
  void note_dirty(const void* p, std::size_t n) { cache->note_dirty(p, n); }
  flushkit::status flush() { return {}; }
};
// The checker only submits; the devices' executor is an io_context the factory owns.
template <class Provider>
using device_for = flushkit::pmem::pmem_device<flushkit::region<Provider>, boost::asio::io_context::executor_type>;

struct lying_under_test {
  device_for<lying_cache> operator()(ft::volatile_cache& c) const {
    return device_for<lying_cache>(io->get_executor(), c.medium(), ft::cache_device_options(), lying_cache{&c});
  }
  std::shared_ptr<boost::asio::io_context> io = std::make_shared<boost::asio::io_context>(1);
};

// A broken provider: flushes only writes older than the previous flush (it
// acknowledges one flush late).
struct lagging_cache {
  ft::volatile_cache* cache;
  ft::volatile_cache::flush_ticket last = 0;
  void note_dirty(const void* p, std::size_t n) { cache->note_dirty(p, n); }
  flushkit::status flush() {
    const auto prev = last;
    last = cache->issue_flush();
    return cache->complete_flush(prev);
  }
};
struct lagging_under_test {
  device_for<lagging_cache> operator()(ft::volatile_cache& c) const {
    return device_for<lagging_cache>(io->get_executor(), c.medium(), ft::cache_device_options(), lagging_cache{&c, 0});
  }
  std::shared_ptr<boost::asio::io_context> io = std::make_shared<boost::asio::io_context>(1);
};

// An asynchronous device under test: pmem_device over async_volatile_cache,
// driven on the checker's thread by poll_one.
struct async_pmem {
  explicit async_pmem(ft::volatile_cache& c)
      : provider(c, io.get_executor()), dev(io, c.medium(), ft::cache_device_options(), provider) {}
  void submit(flushkit::request& r) { dev.submit(r); }
  std::size_t poll_one() {
    if (io.stopped()) io.restart();
    return io.poll_one();
  }
  boost::asio::io_context io;
  ft::async_volatile_cache<> provider;
  device_for<ft::async_volatile_cache<>&> dev;
};
struct async_under_test {
  async_pmem operator()(ft::volatile_cache& c) const { return async_pmem(c); }
};

} // namespace

TEST_SUITE("testing/crash_checker") {

TEST_CASE("every crash point of every small workload recovers a consistent image") {
  ft::crash_checker<> checker;
  const flushkit::test::exhaustive_result e = run_small(checker, 1);
  const ft::crash_report& r = e.report;
  const std::size_t planned_workloads = 5 + 25 + 125 + 625;
  MESSAGE("exhaustive: workloads " << r.workloads << ", crash points " << r.crash_points << ", crash states "
                                   << r.crash_states << ", violations " << r.violations);
  print_examples(r);
  CHECK(r.workloads == planned_workloads);
  CHECK(r.crash_points == e.planned_points);
  CHECK(r.crash_states > r.crash_points); // more than drop_all where writes were pending
  CHECK(r.violations == 0);
}

TEST_CASE("ten thousand seeded random crash trials find no violation") {
  ft::crash_checker<> checker;
  const ft::crash_report r = checker.run_random(1, 10'000);
  MESSAGE("random: trials " << r.random_trials << ", crash states " << r.crash_states << ", violations "
                            << r.violations);
  print_examples(r);
  CHECK(r.random_trials == 10'000);
  CHECK(r.crash_states == 10'000);
  CHECK(r.violations == 0);
}

TEST_CASE("random workloads have the configured lengths and replay from their seed") {
  const ft::crash_checker_options opts;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    const auto w = ft::crash_checker<>::random_workload(seed, opts);
    CHECK(w.size() >= opts.min_random_ops);
    CHECK(w.size() <= opts.max_random_ops);
    const auto again = ft::crash_checker<>::random_workload(seed, opts);
    REQUIRE(again.size() == w.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
      CHECK(again[i].offset == w[i].offset);
      CHECK(again[i].length == w[i].length);
      CHECK(again[i].flags == w[i].flags);
      CHECK(w[i].offset + w[i].length <= opts.medium_size);
    }
  }
}

TEST_CASE("an asynchronous device is checked at the same boundaries") {
  ft::crash_checker<async_under_test> checker;
  const flushkit::test::exhaustive_result e = run_small(checker, 25);
  const ft::crash_report& r = e.report;
  const ft::crash_report rr = checker.run_random(500, 1'000);
  MESSAGE("async exhaustive: crash points " << r.crash_points << ", crash states " << r.crash_states
                                            << ", violations " << r.violations << "; random trials "
                                            << rr.random_trials << ", violations " << rr.violations);
  print_examples(r);
  print_examples(rr);
  CHECK(r.crash_points == e.planned_points);
  CHECK(r.violations == 0);
  CHECK(rr.random_trials == 1'000);
  CHECK(rr.violations == 0);
}

TEST_CASE("a provider that acknowledges flushes without flushing is caught and the failure replays") {
  ft::crash_checker<lying_under_test> checker;
  const ft::crash_report r = run_small(checker, 25).report;
  const ft::crash_report rr = checker.run_random(1, 1'000);
  MESSAGE("lying provider: exhaustive violations " << r.violations << ", random violations " << rr.violations);
  CHECK(r.violations > 0);
  const flushkit::test::replayed_violation v = flushkit::test::check_lie_replays(checker, rr);
  CHECK(v.replay.examples.front().offset == v.found.offset);

  flushkit::test::check_lie_caught_on_single_fua(checker);
}

TEST_CASE("a provider that acknowledges one flush late is caught") {
  ft::crash_checker<lagging_under_test> checker;
  const std::vector<ft::crash_op> w{ft::crash_op::write(0, 32), ft::crash_op::flush()};
  const ft::crash_report r = checker.run_exhaustive(w);
  CHECK(r.violations > 0);
  const ft::crash_report rr = checker.run_random(1, 500);
  CHECK(rr.violations > 0);
}

TEST_CASE("each crash point gets every finite policy and the seeded ones") {
  // Two plain writes, pending counts at the 9 boundaries: before 0 (0), noted
  // 0 (1), completed 0 (1), before 1 (1), noted 1 (2), completed 1 (2),
  // removal flush issued (2), completed (0), end (0). Per point: drop_all, the
  // 2^p - 1 subsets oldest first, those of >= 2 writes newest first, and 2
  // seeds x (random_subset + 4 torn units) when p > 0.
  ft::crash_checker<> checker;
  const std::vector<ft::crash_op> w{ft::crash_op::write(0, 100), ft::crash_op::write(40, 100)};
  const ft::crash_report r = checker.run_exhaustive(w);
  const std::size_t p1 = 1 + 1 + 0 + 10, p2 = 1 + 3 + 1 + 10;
  CHECK(r.crash_points == 9);
  CHECK(r.crash_states == 3 * 1 + 3 * p1 + 3 * p2);
  CHECK(r.violations == 0);
}

TEST_CASE("the same provider without the lie passes the same workload") {
  ft::crash_checker<> checker;
  const std::vector<ft::crash_op> w{ft::crash_op::write(0, 32), ft::crash_op::flush()};
  CHECK(checker.run_exhaustive(w).violations == 0);
  CHECK(checker.check_at(w, 7, ft::crash_policy::drop_all()).crash_states == 1);
}

} // TEST_SUITE
