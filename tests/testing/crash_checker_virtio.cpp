// The crash checker over the virtio-pmem stack exactly as a user composes it:
// pmem_device<region<pmem_guest&>> or pmem_device<region<coalescer<pmem_guest&>&>>,
// pmem_host answering over an inproc_pair, the host's flush target the
// checker's volatile_cache. No layer of that stack tracks dirty bytes (the
// guest writes into host memory, as into a page cache), so the cache finds the
// writes itself (`track_stores`); nothing in the test forwards a capability by
// hand. The three event loops (guest, host device loop, host blocking pool)
// are io_contexts the checker steps on its own thread through poll_one(), so
// every crash boundary is exact.
#include <flushkit/testing/crash_checker.hpp>

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/flush_result.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/pmem/pmem_device.hpp>
#include <flushkit/testing/volatile_cache.hpp>
#include <flushkit/virtio/inproc_transport.hpp>
#include <flushkit/virtio/pmem_guest.hpp>
#include <flushkit/virtio/pmem_host.hpp>

#include <boost/asio/io_context.hpp>

#include "support/crash_workloads.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <ostream> // doctest prints a status through operator<<
#include <string>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
namespace ft = flushkit::testing;
namespace fv = flushkit::virtio;
using flushkit::req_flags;
using flushkit::req_op;
using flushkit::test::crash_alphabet;
using flushkit::test::print_examples;
using flushkit::test::run_small;

namespace {

using ex_t = asio::io_context::executor_type;
using guest_t = fv::pmem_guest<ex_t, fv::inproc_notifier<ex_t>>;
using host_t = fv::pmem_host<ex_t, ex_t, fv::inproc_notifier<ex_t>>;

constexpr std::uint64_t pmem_start = 0x1'0000'0000; // the pmem range in guest physical memory
constexpr std::uint64_t guest_ram_bytes = 64 * 1024; // ring + request/response slots

// ---- the device under test ---------------------------------------------------------

/// The host's flush target: the cache's synchronous flush (makes durable every
/// write noted before it).
struct cache_target {
  ft::volatile_cache* cache;
  flushkit::status flush() { return cache->flush(); }
};

/// A broken host: acknowledges every flush without making anything durable.
struct lying_target {
  ft::volatile_cache* cache;
  flushkit::status flush() { return {}; }
};

/// Guest loop, host device loop and host blocking pool, stepped on one thread.
struct stepped_loops {
  asio::io_context guest, host, pool;
  std::size_t next = 0;

  /// Runs one ready handler, taking the loops in turn. Returns 0 when none is ready.
  std::size_t poll_one() {
    asio::io_context* loops[] = {&guest, &host, &pool};
    for (std::size_t k = 0; k < 3; ++k) {
      asio::io_context& io = *loops[(next + k) % 3];
      if (io.stopped()) io.restart();
      if (io.poll_one() == 0) continue;
      next = (next + k + 1) % 3;
      return 1;
    }
    return 0;
  }
  void run_until_idle() {
    while (poll_one() != 0) {}
  }
};

/// Not a coalescer: the guest is the region's provider directly.
struct no_coalescer {
  no_coalescer(asio::io_context&, guest_t&) {}
};

/// pmem_device -> [coalescer ->] pmem_guest -> inproc_pair -> pmem_host -> `Target`.
template <class Target, bool Coalesce> class virtio_stack {
  using coalescer_t = std::conditional_t<Coalesce, flushkit::coalescer<guest_t&, ex_t>, no_coalescer>;
  using provider_t = std::conditional_t<Coalesce, coalescer_t, guest_t>;

public:
  explicit virtio_stack(ft::volatile_cache& c)
      : target_{&c}, pair_(loops_.host.get_executor(), loops_.guest.get_executor(), guest_ram_bytes),
        host_(loops_.host.get_executor(), loops_.pool.get_executor(), pair_.control(), pair_.memory(), target_,
              pair_.interrupt(), fv::pmem_config{pmem_start, c.medium().size()}, host_options()),
        guest_(loops_.guest.get_executor(), pair_.control(), pair_.memory(),
               fv::driver_area{pair_.guest_base(), pair_.ram(), pair_.ram_size()}, pair_.kick(), guest_options()),
        coalescer_(loops_.guest, guest_), dev_(loops_.guest, c.medium(), ft::cache_device_options(), provider()) {
    REQUIRE(pair_.ok());
    host_.set_config_notifier(pair_.config_change());
    pair_.connect_device(&host_t::kick_entry, &host_);
    pair_.connect_driver(&on_interrupt, &guest_);
    pair_.connect_config(&on_config, &guest_);
    REQUIRE_FALSE(guest_.probe());
    REQUIRE(guest_.range().size == c.medium().size());
  }
  virtio_stack(const virtio_stack&) = delete;
  virtio_stack& operator=(const virtio_stack&) = delete;

  /// v7 order: the device is removed (no flush: its provider is
  /// asynchronous), then the guest. The guest's remove() waits for its loop,
  /// so the guest is marked broken and its loop stepped to idle first.
  ~virtio_stack() {
    dev_.remove();
    guest_.mark_broken("test teardown");
    loops_.run_until_idle();
    guest_.remove();
    loops_.run_until_idle();
    CHECK(host_.busy() == 0);
    CHECK(host_.counters().malformed == 0);
    CHECK(guest_.slab_fallbacks() == 0);
  }

  void submit(flushkit::request& r) { dev_.submit(r); }
  std::size_t poll_one() { return loops_.poll_one(); }

private:
  static fv::pmem_host_options host_options() {
    fv::pmem_host_options o;
    o.queue_size_max = 16;
    return o;
  }
  static fv::pmem_guest_options guest_options() {
    fv::pmem_guest_options o;
    o.queue_size = 8;
    o.log = [](void*, const char*, const char*) {}; // the teardown's mark_broken is expected
    return o;
  }
  static void on_interrupt(void* g) { static_cast<guest_t*>(g)->on_interrupt(); }
  static void on_config(void* g) { static_cast<guest_t*>(g)->on_config_change(); }

  provider_t& provider() noexcept {
    if constexpr (Coalesce)
      return coalescer_;
    else
      return guest_;
  }

  stepped_loops loops_;
  Target target_;
  fv::inproc_pair<ex_t> pair_;
  host_t host_;
  guest_t guest_;
  coalescer_t coalescer_;
  flushkit::pmem::pmem_device<flushkit::region<provider_t&>, ex_t> dev_; // executor: the guest loop
};

template <class Target, bool Coalesce> struct virtio_under_test {
  virtio_stack<Target, Coalesce> operator()(ft::volatile_cache& c) const { return virtio_stack<Target, Coalesce>(c); }
};

using direct_checker = ft::crash_checker<virtio_under_test<cache_target, false>>;
using coalesced_checker = ft::crash_checker<virtio_under_test<cache_target, true>>;
using lying_checker = ft::crash_checker<virtio_under_test<lying_target, false>>;

/// The checker's options for the virtio stack: the cache tracks stores.
ft::crash_checker_options virtio_options() {
  ft::crash_checker_options o;
  o.track_stores = true;
  return o;
}

/// Crash points of workload `w` on the virtio stack: before submit and
/// completion per op, a flush issue and completion per region flush, at most
/// one write found per flush issue, and the end (no removal flush).
std::size_t most_virtio_boundaries(const std::vector<ft::crash_op>& w) {
  std::size_t n = 1;
  for (const ft::crash_op& op : w) {
    n += 2;
    if (has(op.flags, req_flags::preflush)) n += 3;
    if (op.kind == req_op::write && has(op.flags, req_flags::fua)) n += 3;
  }
  return n;
}

} // namespace

TEST_SUITE("testing/crash_checker") {

TEST_CASE("virtio-pmem guest and host: every crash point of every small workload recovers a consistent image") {
  direct_checker checker(virtio_options());
  const flushkit::test::exhaustive_result e = run_small(checker, 1);
  const ft::crash_report& r = e.report;
  MESSAGE("virtio exhaustive: workloads " << r.workloads << ", crash points " << r.crash_points << ", crash states "
                                          << r.crash_states << ", violations " << r.violations);
  print_examples(r);
  CHECK(e.planned_workloads == 5 + 25 + 125 + 625);
  CHECK(r.workloads == e.planned_workloads);
  std::size_t most = 0;
  for (const auto& w : flushkit::test::small_workloads(1)) most += most_virtio_boundaries(w);
  CHECK(r.crash_points <= most);
  CHECK(r.crash_points >= 3 * r.workloads);
  CHECK(r.crash_states > r.crash_points);
  CHECK(r.violations == 0);
}

TEST_CASE("virtio-pmem guest and host: seeded random crash trials find no violation") {
  constexpr std::size_t trials = 3'000; // more in scripts/stress; the sanitizer builds run this too
  direct_checker checker(virtio_options());
  const ft::crash_report r = checker.run_random(1, trials);
  MESSAGE("virtio random: trials " << r.random_trials << ", crash states " << r.crash_states << ", violations "
                                   << r.violations);
  print_examples(r);
  CHECK(r.random_trials == trials);
  CHECK(r.crash_states == trials);
  CHECK(r.violations == 0);
}

TEST_CASE("virtio-pmem behind a coalescer: seeded random crash trials find no violation") {
  constexpr std::size_t trials = 3'000;
  coalesced_checker checker(virtio_options());
  const ft::crash_report r = checker.run_random(1, trials);
  const ft::crash_report one = checker.run_exhaustive(std::vector<ft::crash_op>{crash_alphabet[1], crash_alphabet[4]});
  MESSAGE("virtio + coalescer random: trials " << r.random_trials << ", crash states " << r.crash_states
                                               << ", violations " << r.violations);
  print_examples(r);
  CHECK(r.random_trials == trials);
  CHECK(r.crash_states == trials);
  CHECK(r.violations == 0);
  // The coalescer adds no crash boundary: one backend flush per region flush.
  direct_checker direct(virtio_options());
  const std::vector<ft::crash_op> pair{crash_alphabet[1], crash_alphabet[4]};
  CHECK(one.crash_points == direct.run_exhaustive(pair).crash_points);
  CHECK(one.violations == 0);
}

TEST_CASE("a virtio-pmem host that acknowledges flushes without flushing is caught") {
  lying_checker checker(virtio_options());
  const flushkit::test::exhaustive_result e = run_small(checker, 1);
  const ft::crash_report rr = checker.run_random(1, 1'000);
  MESSAGE("virtio lying host: exhaustive violations " << e.report.violations << ", random violations "
                                                      << rr.violations);
  CHECK(e.report.violations > 0);
  flushkit::test::check_lie_replays(checker, rr);

  flushkit::test::check_lie_caught_on_single_fua(checker);
}

} // TEST_SUITE
