// tests/journal/journal_power_loss.cpp - the journal under simulated power loss: every crash point of small
// workloads and random trials with concurrent appenders. Invariants after recovery: no acknowledged LSN lost, no
// record that was never appended, LSNs contiguous, and the recovered journal appends where it ended.
#include <flushkit/journal/journal.hpp>

#include <flushkit/testing/volatile_segment_store.hpp>

#include "support/journal_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using flushkit::lsn_t;
using flushkit::testing::crash_policy;
using flushkit::testing::volatile_segment_store;
using store_journal = flushkit::basic_journal<volatile_segment_store&>;

namespace {

constexpr std::uint64_t segment_bytes = 4096;

/// What a workload appended and which appends were acknowledged.
struct workload_result {
  std::set<std::uint64_t> submitted;
  std::map<lsn_t, std::uint64_t> acked;
  std::size_t operations = 0;
};

/// `coroutines` appenders, each appending `per_coroutine` records in turn,
/// on `threads` threads running one io_context. The power is cut after
/// `cut` store operations (none when `cut` is max).
workload_result run_workload(volatile_segment_store& store, int threads, int coroutines, int per_coroutine,
                             std::size_t cut) {
  workload_result r;
  asio::io_context io;
  auto j = store_journal::open(io, store);
  REQUIRE(j);
  store.cut_power_after(cut);
  std::mutex m;
  for (int c = 0; c < coroutines; ++c)
    asio::co_spawn(
        io,
        [&, c]() -> asio::awaitable<void> {
          for (int i = 0; i < per_coroutine; ++i) {
            const std::uint64_t id = static_cast<std::uint64_t>(c) * 1000 + static_cast<std::uint64_t>(i) + 1;
            const auto p = flushkit::test::make_payload(id, 200 + static_cast<std::size_t>((id * 37) % 900));
            {
              std::lock_guard lock(m);
              r.submitted.insert(id);
            }
            auto [ec, lsn] = co_await j->async_append(asio::buffer(p), asio::as_tuple(asio::use_awaitable));
            if (ec) continue;
            std::lock_guard lock(m);
            r.acked.emplace(lsn, id);
          }
        },
        asio::detached);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back([&] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  j->close_and_wait();
  r.operations = store.operations();
  return r;
}

/// Reboots with `policy`, reopens, and checks the invariants; then appends
/// once more and checks the record lands right after the recovered end.
void check_recovery(volatile_segment_store& store, const workload_result& w, const crash_policy& policy) {
  store.reboot(policy);
  asio::io_context io;
  lsn_t last = 0;
  {
    auto j = store_journal::open(io, store);
    REQUIRE(j);
    last = j->recovery().last_lsn;
    const auto ids = flushkit::test::read_ids(store);
    CHECK(ids.size() == j->recovery().records);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      CHECK(ids[i].first == i + 1);                 // contiguous from the first LSN
      CHECK(w.submitted.count(ids[i].second) == 1); // a record that was appended, intact
    }
    for (const auto& entry : w.acked) {
      const lsn_t lsn = entry.first;
      const std::uint64_t id = entry.second;
      CAPTURE(lsn);
      REQUIRE(lsn <= ids.size()); // no acknowledged LSN lost...
      CHECK(ids[lsn - 1].second == id); // ...and it holds what was acknowledged
    }
    const auto more = flushkit::test::append_all(*j, io, {flushkit::test::make_payload(999999, 64)});
    REQUIRE(more.size() == 1);
    CHECK_FALSE(more[0].ec);
    CHECK(more[0].lsn == last + 1);
  }
  store.reboot(crash_policy::drop_all()); // the append above was synced: it survives anything
  const auto ids = flushkit::test::read_ids(store);
  REQUIRE(ids.size() == last + 1);
  CHECK(ids.back().second == 999999);
}

std::vector<crash_policy> policies(std::uint64_t seed) {
  return {crash_policy::drop_all(), crash_policy::keep_all(), crash_policy::random_subset(seed),
          crash_policy::torn(8, seed), crash_policy::torn(512, seed)};
}

} // namespace

TEST_CASE("journal power loss: every crash point of a sequential workload, five cut policies") {
  std::size_t total = 0;
  {
    volatile_segment_store clean({.segment_bytes = segment_bytes});
    total = run_workload(clean, 1, 1, 12, ~std::size_t{0}).operations;
  }
  REQUIRE(total > 20);
  std::size_t runs = 0, acked_runs = 0;
  for (std::size_t cut = 0; cut <= total; ++cut) {
    for (const crash_policy& p : policies(cut)) {
      CAPTURE(cut);
      CAPTURE(p.to_string());
      volatile_segment_store store({.segment_bytes = segment_bytes});
      const workload_result w = run_workload(store, 1, 1, 12, cut);
      check_recovery(store, w, p);
      ++runs;
      acked_runs += w.acked.empty() ? 0u : 1u;
    }
  }
  MESSAGE("crash points: " << total + 1 << ", runs: " << runs << ", with acknowledged records: " << acked_runs);
  CHECK(acked_runs > runs / 2); // the cuts fall everywhere, not only before the first acknowledgement
}

TEST_CASE("journal power loss: random trials with appenders on four threads (in-order durability)") {
  std::size_t total = 0;
  {
    volatile_segment_store clean({.segment_bytes = segment_bytes});
    total = run_workload(clean, 4, 8, 8, ~std::size_t{0}).operations;
  }
  std::mt19937_64 rng(20261202);
  std::size_t trials = 0, acked = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const std::size_t cut = std::uniform_int_distribution<std::size_t>(0, total)(rng);
    const auto all = policies(rng());
    const crash_policy p = all[static_cast<std::size_t>(trial) % all.size()];
    CAPTURE(cut);
    CAPTURE(p.to_string());
    volatile_segment_store store({.segment_bytes = segment_bytes});
    const workload_result w = run_workload(store, 4, 8, 8, cut);
    check_recovery(store, w, p);
    ++trials;
    acked += w.acked.size();
  }
  MESSAGE("trials: " << trials << ", acknowledged records checked: " << acked);
  CHECK(acked > 0);
}
