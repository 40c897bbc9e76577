// Stress: pmem_device over fault_injector<asynchronous provider>, directly and
// through a coalescer, with threads and coroutines submitting a seeded random
// mix while flushes fail, are delayed, and hang until another thread releases them.
#include "support/stress_harness.hpp"

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/exec/ordered_executor.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/testing/fault_injector.hpp>

#include "support/violation_capture.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

namespace {

namespace asio = boost::asio;
namespace ft = flushkit::testing;
namespace st = flushkit_test::stress;
using flushkit::status;
using ft::fault;
using ft::fault_kind;
using ft::selection;
using pool_ex = asio::thread_pool::executor_type;

constexpr std::uint64_t default_requests = 30'000;

/// Asynchronous provider: completes each flush with success from an ordered
/// executor over a thread pool (a device whose completions arrive on other threads).
struct pool_provider {
  explicit pool_provider(flushkit::ordered_executor<pool_ex>& ex) : ex_(&ex) {}
  flushkit::flush_result flush(flushkit::request& req) {
    calls.fetch_add(1, std::memory_order_relaxed);
    req.work.set(&pool_provider::run, this);
    if (status s = ex_->submit(req.work)) return flushkit::flush_result::done(s);
    return flushkit::flush_result::async(req);
  }
  static void run(flushkit::work_item& w, void* self) {
    flushkit::request& req = flushkit::request::from_work(w);
    static_cast<pool_provider*>(self)->ex_->finish(w);
    req.complete({});
  }
  std::atomic<std::uint64_t> calls{0};

private:
  flushkit::ordered_executor<pool_ex>* ex_;
};

using injector = ft::fault_injector<pool_provider&>;

/// Releases parked (hung) flushes from its own thread until stopped: every
/// third one with an error (the flush fails), the others with success.
struct hang_releaser {
  explicit hang_releaser(injector& i) : inj(i), thread([this] { run(); }) {}
  ~hang_releaser() { stop(); }
  void stop() {
    done.store(true);
    if (thread.joinable()) thread.join();
    while (inj.parked() != 0) release_one();
  }
  void release_one() {
    const bool fail = (released + 1) % 3 == 0;
    if (inj.release_one(fail ? status(flushkit::errc::cancelled) : status{})) {
      ++released;
      if (fail) ++released_with_error;
    }
  }
  void run() {
    while (!done.load()) {
      if (inj.parked() != 0) release_one();
      else std::this_thread::sleep_for(std::chrono::microseconds(200)); // pacing only: a hang lasts a while
    }
  }
  injector& inj;
  std::uint64_t released = 0, released_with_error = 0;
  std::atomic<bool> done{false};
  std::thread thread;
};

/// The whole direct-device rig; `Coalesced` puts a coalescer between the region and the injector.
template <bool Coalesced> struct direct_rig {
  using backend = std::conditional_t<Coalesced, flushkit::coalescer<injector&>, injector&>;
  using device = flushkit::pmem::pmem_device<flushkit::region<backend&>>;

  direct_rig(std::uint64_t seed, const st::load_shape& shape)
      : medium(flushkit::pmem::backing::anonymous(shape.blocks() * st::block_bytes)), strand(pool.get_executor()),
        provider(strand), inj(provider, options(seed)), back(make_backend()),
        dev(pool, medium->bytes(), flushkit::pmem::device_options{}, back) {
    inj.add_rule(selection::rate(0.01), fault::fail_before(std::make_error_code(std::errc::not_enough_memory)))
        .add_rule(selection::rate(0.01), fault::fail_after(flushkit::errc::timeout))
        .add_rule(selection::rate(0.02), fault::delay(std::chrono::microseconds(150)))
        .add_rule(selection::rate(0.005), fault::hang());
    timer_thread = std::thread([this] { timers.run(); });
  }
  ~direct_rig() { quiesce(); }
  /// Waits until every delay timer fired and every provider completion returned.
  void quiesce() {
    guard.reset();
    if (timer_thread.joinable()) timer_thread.join();
    pool.join();
  }
  ft::fault_options options(std::uint64_t seed) {
    ft::fault_options o(seed);
    o.executor = timers.get_executor();
    o.max_delayed = 16;
    return o;
  }
  backend& make_backend() {
    if constexpr (Coalesced) return coal;
    else return inj;
  }

  asio::io_context timers;
  asio::executor_work_guard<asio::io_context::executor_type> guard{timers.get_executor()};
  std::thread timer_thread;
  asio::thread_pool pool{2};
  flushkit::pmem::result<flushkit::pmem::backing> medium;
  flushkit::ordered_executor<pool_ex> strand;
  pool_provider provider;
  injector inj;
  flushkit::coalescer<injector&> coal{pool, inj};
  backend& back;
  device dev;
};

template <bool Coalesced> void run_direct(const std::string& name) {
  const auto cfg = st::run_config::from_env(default_requests);
  MESSAGE(name << ": seed " << cfg.seed << " (FLUSHKIT_STRESS_SEED), requests " << cfg.requests
               << " (FLUSHKIT_STRESS_REQUESTS)");
  CAPTURE(cfg.seed);
  flushkit::test::violation_capture violations;
  const st::load_shape shape;
  direct_rig<Coalesced> rig(cfg.seed, shape);
  REQUIRE(rig.medium);
  st::ledger ledger(cfg.seed, cfg.requests);
  hang_releaser releaser(rig.inj);
  std::chrono::duration<double> took{};
  {
    st::driver<typename direct_rig<Coalesced>::device> drv(rig.dev, ledger, shape);
    drv.start();
    took = drv.wait(std::chrono::seconds(60), [&] {
      const auto c = rig.inj.counters();
      std::fprintf(stderr, "stress: injector calls %llu parked %zu delayed %zu\n",
                   static_cast<unsigned long long>(c.calls), c.parked, c.delayed);
    });
    drv.join();
  }
  releaser.stop();
  rig.quiesce();

  const st::summary s = ledger.totals();
  const ft::fault_counters c = rig.inj.counters();
  const std::uint64_t failures_injected =
      c.of(fault_kind::fail_before) + c.of(fault_kind::fail_after) + releaser.released_with_error;
  MESSAGE(name << ": " << s.to_string() << "; " << took.count() << " s; injector calls " << c.calls
               << ", fail_before " << c.of(fault_kind::fail_before) << ", fail_after " << c.of(fault_kind::fail_after)
               << ", delays " << c.of(fault_kind::delay) << ", hangs " << c.of(fault_kind::hang)
               << " (released with error " << releaser.released_with_error << ")");
  CHECK(s.lost == 0);
  CHECK(s.doubles == 0);
  CHECK(s.completions == cfg.requests);
  CHECK(violations.violations() == 0);
  CHECK(s.unflagged_failures() == 0);   // reads and plain writes never reach the provider
  CHECK(s.total(st::outcome::other) == 0); // the region maps everything to io_error / no_memory
  CHECK(s.content_mismatches == 0);
  CHECK(c.parked == 0);
  CHECK(c.delayed == 0);
  CHECK(c.of(fault_kind::hang) == releaser.released);
  // Calls that reached the inner provider: everything but fail_before and hangs released with an error.
  CHECK(rig.provider.calls.load() == c.calls - c.of(fault_kind::fail_before) - releaser.released_with_error);
  if constexpr (!Coalesced) {
    // Each injected failure fails exactly the request whose flush it hit (which then stops).
    CHECK(s.total(st::outcome::no_memory) == c.of(fault_kind::fail_before));
    CHECK(s.total(st::outcome::io_error) == c.of(fault_kind::fail_after) + releaser.released_with_error);
  } else {
    const flushkit::coalescer_stats cs = rig.coal.stats();
    MESSAGE(name << ": backend flushes " << cs.flushes_issued << " (failed " << cs.flushes_failed
                 << "), requests completed by the coalescer " << cs.requests_completed << ", largest batch "
                 << cs.largest_batch);
    CHECK(cs.flushes_issued == c.calls);
    CHECK(cs.flushes_failed == failures_injected);
    const std::uint64_t failed = s.total(st::outcome::io_error) + s.total(st::outcome::no_memory);
    CHECK(failed >= cs.flushes_failed); // a failed flush fails at least the request that issued it...
    if (cs.flushes_failed == 0) CHECK(failed == 0); // ...and a success never becomes a failure
    CHECK(cs.flushed_epoch >= cs.durable_epoch);
  }
}

} // namespace

TEST_SUITE("stress/direct_device") {

TEST_CASE("pmem_device over fault_injector: every request completes once with a status matching the faults [stress]") {
  run_direct<false>("direct");
}

TEST_CASE("pmem_device over coalescer over fault_injector: every request completes once [stress]") {
  run_direct<true>("coalesced");
}

} // TEST_SUITE
