#include <flushkit/testing/cacheline_model.hpp>

#include <flushkit/core/region.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/testing/crash_checker.hpp>
#include <flushkit/testing/volatile_cache.hpp>

#include "support/build_kind.hpp"
#include "support/cache_bytes.hpp"
#include "support/crash_workloads.hpp"

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream> // doctest prints a status through operator<<
#include <span>
#include <type_traits>
#include <utility>

namespace fk = flushkit;
namespace ft = flushkit::testing;

namespace {

static_assert(fk::pmem::line_writer<ft::cacheline_model>);
static_assert(fk::dirty_tracking<ft::cacheline_model_provider<>> &&
              fk::declares_durability<ft::cacheline_model_provider<>> &&
              fk::reports_usability<ft::cacheline_model_provider<>>);

ft::volatile_cache make_cache() { return ft::volatile_cache({8192, 64, 64 * 1024}); }

using flushkit::test::all_of;
using flushkit::test::put;

template <std::size_t N>
using model_device =
    fk::pmem::pmem_device<fk::region<ft::cacheline_model_provider<N>>, boost::asio::io_context::executor_type>;

// The crash checker's device: a pmem_device over the real provider over the checker's cache.
// The checker only submits; the devices' executor is an io_context the factory owns.
template <std::size_t N> struct model_under_test {
  model_device<N> operator()(ft::volatile_cache& c) const {
    return model_device<N>(io->get_executor(), c.medium(), ft::cache_device_options(), std::in_place, c);
  }
  std::shared_ptr<boost::asio::io_context> io = std::make_shared<boost::asio::io_context>(1);
};

// A broken wrapper: forwards flush() but hides note_dirty. It has no provider(),
// so the capability check cannot see through it, as a hand-written wrapper may.
struct hiding_wrapper {
  ft::cacheline_model_provider<>* inner;
  fk::status flush() { return inner->flush(); }
};
struct hiding_pmem {
  explicit hiding_pmem(ft::volatile_cache& c)
      : provider(c), dev(io, c.medium(), ft::cache_device_options(), hiding_wrapper{&provider}) {}
  void submit(fk::request& r) { dev.submit(r); }
  boost::asio::io_context io; // the device's executor (submit only: nothing runs on it)
  ft::cacheline_model_provider<> provider;
  fk::pmem::pmem_device<fk::region<hiding_wrapper>> dev;
};
struct hiding_under_test {
  hiding_pmem operator()(ft::volatile_cache& c) const { return hiding_pmem(c); }
};

} // namespace

TEST_SUITE("testing/cacheline_model") {

TEST_CASE("noted lines that were not flushed are lost at a power cut") {
  ft::volatile_cache cache = make_cache();
  ft::cacheline_model_provider<> p(cache);
  CHECK_FALSE(p.usable());
  CHECK(p.durability() == fk::durability_scope::cpu_cache);
  put(cache, p, 100, 10, 7);
  CHECK(p.dirty_ranges() == 1);
  CHECK(cache.pending_writes() == 0); // still in the CPU cache: not even in flight
  cache.crash(ft::crash_policy::keep_all());
  CHECK(all_of(cache.recover(), 100, 10, 0));
}

TEST_CASE("a flush makes exactly the noted lines durable") {
  ft::volatile_cache cache = make_cache();
  ft::cacheline_model_provider<> p(cache);
  put(cache, p, 100, 10, 7);
  std::memset(cache.medium().data() + 2000, 9, 10); // stored, never noted: another line
  CHECK_FALSE(p.flush());
  CHECK(all_of(cache.durable(), 100, 10, 7));
  CHECK(all_of(cache.durable(), 2000, 10, 0));
  CHECK(p.lines_written_back() == 1);
  cache.crash(ft::crash_policy::drop_all());
  CHECK(all_of(cache.recover(), 100, 10, 7));
  CHECK(all_of(cache.durable(), 2000, 10, 0));
}

TEST_CASE("a full range set writes the new range back and fences at once") {
  ft::volatile_cache cache = make_cache();
  ft::cacheline_model_provider<1> p(cache);
  put(cache, p, 0, 10, 5);    // tracked
  put(cache, p, 4000, 10, 6); // the set is full: written back and fenced now
  CHECK(p.overflow_write_backs() == 1);
  CHECK(all_of(cache.durable(), 4000, 10, 6));
  CHECK(all_of(cache.durable(), 0, 10, 0));
  cache.crash(ft::crash_policy::drop_all());
  CHECK(all_of(cache.recover(), 4000, 10, 6));
  CHECK(all_of(cache.durable(), 0, 10, 0));
}

TEST_CASE("a failed fence is reported by every flush until cleared") {
  const fk::status io_error = fk::make_error_code(fk::errc::io_error);
  ft::volatile_cache cache = make_cache();
  ft::cacheline_model_provider<> p(cache);
  cache.fail_next_flush(io_error, true);
  put(cache, p, 0, 10, 5);
  CHECK(p.flush() == io_error);
  CHECK(p.usable() == io_error);
  put(cache, p, 500, 10, 6); // not usable: tracks nothing
  CHECK(p.dirty_ranges() == 0);
  CHECK(p.flush() == io_error);
  p.writer().clear_error();
  put(cache, p, 500, 10, 6);
  CHECK_FALSE(p.flush());
  CHECK(all_of(cache.durable(), 500, 10, 6));
  CHECK(all_of(cache.durable(), 0, 10, 0)); // dropped by the failed write-back
}

TEST_CASE_TEMPLATE("the crash checker finds no violation over the real range tracking", Ranges,
                   std::integral_constant<std::size_t, 1>,
                   std::integral_constant<std::size_t, 16>) {
  ft::crash_checker<model_under_test<Ranges::value>> checker;
  const ft::crash_report r = fk::test::run_small(checker, fk::test::exhaustive_stride4).report;
  fk::test::print_examples(r);
  CHECK(r.crash_states > r.crash_points);
  CHECK(r.violations == 0);
  const ft::crash_report random = checker.run_random(1, fk::test::heavy_random_trials);
  fk::test::print_examples(random);
  CHECK(random.violations == 0);
}

TEST_CASE("a wrapper that hides note_dirty loses acknowledged writes, and the checker sees it") {
  ft::crash_checker<hiding_under_test> checker;
  fk::test::check_lie_caught_on_single_fua(checker);
}

} // TEST_SUITE("testing/cacheline_model")
