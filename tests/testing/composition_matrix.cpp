// The composition matrix: every stack a user can build from flushkit's
// wrappers keeps the durability of the provider alone. For each stack
//   pmem_device<region<[coalescer<] [fault_injector<] provider [>] [>]>>
// with provider in {volatile_cache (synchronous), async_volatile_cache,
// cacheline_provider over a simulated CPU cache, volatile_cache behind
// offload_provider}, the crash checker crashes at
// every boundary of every small workload, and runs seeded random trials:
// 0 violations (a sample of the four-op workloads in sanitizer builds, see
// support/build_kind.hpp). A wrapper that hides note_dirty from the type system is
// caught at run time (the control below); one that exposes provider() does
// not compile (tests/compile_fail/hides_note_dirty.cpp).
#include <flushkit/testing/crash_checker.hpp>

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/exec/offload_provider.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/testing/cacheline_model.hpp>
#include <flushkit/testing/fault_injector.hpp>
#include <flushkit/testing/volatile_cache.hpp>

#include <boost/asio/io_context.hpp>

#include "support/build_kind.hpp"
#include "support/crash_workloads.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <chrono>
#include <memory>
#include <ostream> // MESSAGE prints through operator<<
#include <type_traits>

namespace ft = flushkit::testing;
using flushkit::test::print_examples;
using flushkit::test::run_small;

namespace {

using io_executor = boost::asio::io_context::executor_type;

// ---- the providers at the bottom of a stack ----------------------------------------

/// The cache itself: a synchronous, dirty-tracking provider.
struct sync_cache {
  using type = ft::volatile_cache;
  type& provider;
  sync_cache(ft::volatile_cache& c, boost::asio::io_context&) : provider(c) {}
};

/// The cache behind an ordered executor: an asynchronous provider.
struct async_cache {
  using type = ft::async_volatile_cache<io_executor>;
  type provider;
  async_cache(ft::volatile_cache& c, boost::asio::io_context& io) : provider(c, io.get_executor()) {}
};

/// flushkit's own cacheline_provider (its range tracking, two ranges so the
/// overflow path runs) writing back into a simulated CPU cache.
struct cacheline_cache {
  using type = ft::cacheline_model_provider<2>;
  type provider;
  cacheline_cache(ft::volatile_cache& c, boost::asio::io_context&) : provider(ft::cacheline_model(c)) {}
};

/// The synchronous cache run off the caller's thread by offload_provider
/// (its executor is the stack's io_context, polled by the checker).
struct offloaded_cache {
  using type = flushkit::offload_provider<ft::volatile_cache&, io_executor>;
  type provider;
  offloaded_cache(ft::volatile_cache& c, boost::asio::io_context& io) : provider(io.get_executor(), c) {}
};

// ---- a stack ---------------------------------------------------------------------

/// An absent layer.
struct no_layer {
  template <class... T> explicit no_layer(T&&...) {}
};

/// The coalescer's options for a batching policy (bounded: a short wait, so
/// that a lone request is issued by the timer).
constexpr flushkit::coalescer_options coalescing(flushkit::batching policy) {
  if (policy != flushkit::batching::bounded) return {.batching = policy};
  return {.batching = policy, .min_batch = 2, .max_delay = std::chrono::microseconds(50)};
}

template <class Bottom, bool Fault, bool Coalesce, flushkit::batching Policy> class stack {
  using bottom_t = typename Bottom::type;
  using fault_t = std::conditional_t<Fault, ft::fault_injector<bottom_t&>, bottom_t>;
  using top_t = std::conditional_t<Coalesce, flushkit::coalescer<fault_t&, io_executor>, fault_t>;

public:
  explicit stack(ft::volatile_cache& c)
      : bottom_(c, io_), fault_(bottom_.provider), coalescer_(io_, faulted(), coalescing(Policy)),
        dev_(io_, c.medium(), ft::cache_device_options(), top()) {
    static_assert(flushkit::dirty_tracking<bottom_t> == flushkit::dirty_tracking<top_t>);
    REQUIRE_FALSE(dev_.error());
  }
  stack(const stack&) = delete;
  stack& operator=(const stack&) = delete;

  void submit(flushkit::request& r) { dev_.submit(r); }
  std::size_t poll_one() {
    if (io_.stopped()) io_.restart();
    // bounded: the next handler may be the timer, due within max_delay.
    if constexpr (Coalesce && Policy == flushkit::batching::bounded) return io_.run_one_for(std::chrono::seconds(1));
    return io_.poll_one();
  }

private:
  fault_t& faulted() {
    if constexpr (Fault)
      return fault_;
    else
      return bottom_.provider;
  }
  top_t& top() {
    if constexpr (Coalesce)
      return coalescer_;
    else
      return faulted();
  }

  boost::asio::io_context io_;
  Bottom bottom_;
  std::conditional_t<Fault, fault_t, no_layer> fault_;
  std::conditional_t<Coalesce, top_t, no_layer> coalescer_;
  flushkit::pmem::pmem_device<flushkit::region<top_t&>, io_executor> dev_;
};

template <class Bottom, bool Fault, bool Coalesce, flushkit::batching Policy> struct stack_under_test {
  stack<Bottom, Fault, Coalesce, Policy> operator()(ft::volatile_cache& c) const {
    return stack<Bottom, Fault, Coalesce, Policy>(c);
  }
};

template <class Bottom, bool Fault, bool Coalesce, flushkit::batching Policy = flushkit::batching::automatic>
struct case_of {
  using factory = stack_under_test<Bottom, Fault, Coalesce, Policy>;
};

/// Exhaustive small workloads plus `trials` random trials; 0 violations.
template <class Factory> void check_matrix_cell(std::size_t trials) {
  ft::crash_checker<Factory> checker;
  const flushkit::test::exhaustive_result e = run_small(checker, flushkit::test::exhaustive_stride4);
  const ft::crash_report random = checker.run_random(1, trials);
  MESSAGE("exhaustive: workloads " << e.report.workloads << ", crash points " << e.report.crash_points
                                   << ", crash states " << e.report.crash_states << ", violations "
                                   << e.report.violations << "; random: trials " << random.random_trials
                                   << ", violations " << random.violations);
  print_examples(e.report);
  print_examples(random);
  CHECK(e.report.workloads == e.planned_workloads);
  CHECK(e.report.crash_states > e.report.crash_points);
  CHECK(e.report.violations == 0);
  CHECK(random.random_trials == trials);
  CHECK(random.violations == 0);
}

// ---- the control: a wrapper that hides note_dirty and is not a provider_wrapper -----

/// Forwards flushes but not note_dirty, and does not expose provider(), so no
/// compile-time check can see what it hides.
struct opaque_wrapper {
  ft::volatile_cache* cache;
  flushkit::status flush() { return cache->flush(); }
};
static_assert(!flushkit::provider_wrapper<opaque_wrapper>);
static_assert(!flushkit::dirty_tracking<opaque_wrapper>);

// The checker only submits; the devices' executor is an io_context the factory owns.
struct opaque_under_test {
  using device_type = flushkit::pmem::pmem_device<flushkit::region<opaque_wrapper>, io_executor>;
  device_type operator()(ft::volatile_cache& c) const {
    return device_type(io->get_executor(), c.medium(), ft::cache_device_options(), opaque_wrapper{&c});
  }
  std::shared_ptr<boost::asio::io_context> io = std::make_shared<boost::asio::io_context>(1);
};

} // namespace

TEST_SUITE("testing/composition_matrix") {

TEST_CASE_TEMPLATE("every stack keeps the provider's durability", T,
                   case_of<sync_cache, false, false>, case_of<sync_cache, true, false>,
                   case_of<sync_cache, false, true>, case_of<sync_cache, true, true>,
                   case_of<async_cache, false, false>, case_of<async_cache, true, false>,
                   case_of<async_cache, false, true>, case_of<async_cache, true, true>,
                   case_of<cacheline_cache, false, false>, case_of<cacheline_cache, true, false>,
                   case_of<cacheline_cache, false, true>, case_of<cacheline_cache, true, true>,
                   case_of<offloaded_cache, false, false>, case_of<offloaded_cache, true, false>,
                   case_of<offloaded_cache, false, true>, case_of<offloaded_cache, true, true>) {
  check_matrix_cell<typename T::factory>(flushkit::test::heavy_random_trials);
}

// The automatic policy above is end_of_turn for the asynchronous bottoms;
// the other policies of an asynchronous backend, with and without faults.
TEST_CASE_TEMPLATE("every batching policy keeps the provider's durability", T,
                   case_of<async_cache, false, true, flushkit::batching::immediate>,
                   case_of<async_cache, true, true, flushkit::batching::bounded>,
                   case_of<offloaded_cache, true, true, flushkit::batching::immediate>,
                   case_of<offloaded_cache, false, true, flushkit::batching::bounded>) {
  check_matrix_cell<typename T::factory>(flushkit::test::heavy_random_trials);
}

TEST_CASE("a wrapper that hides note_dirty loses acknowledged writes, and the matrix sees it") {
  ft::crash_checker<opaque_under_test> checker;
  const flushkit::test::exhaustive_result e = run_small(checker, 5);
  MESSAGE("opaque wrapper: violations " << e.report.violations << " of " << e.report.crash_states);
  CHECK(e.report.violations > 0);
}

} // TEST_SUITE
