// Zero heap allocations per append in steady state: 64 callback appenders on
// the journal over real segment files (the flusher writing and syncing on its
// thread, completions posted back to the io_context), and a coroutine
// awaiting async_append with the default token.
#include "support/counting_new.hpp"

#include <flushkit/journal/journal.hpp>

#include "support/alloc_measure.hpp"
#include "support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <cstdint>

namespace asio = boost::asio;
using flushkit::lsn_t;

namespace {

constexpr int loops = 64;
constexpr int warmup = 2000;
constexpr int measured = 100000;
constexpr int measured_qd1 = 20000; // one sync each: QD1 at fdatasync speed

flushkit::journal_options options() {
  flushkit::journal_options o;
  o.segment_bytes = 32ull << 20; // 100000 records of 80 bytes stay in the first segment: no rotation measured
  return o;
}

/// `loops` appenders; each completion appends again until `remaining` runs
/// out. The allocation count is taken when the `warmup`-th append completed
/// (in steady state: every appender is running) and after the last.
struct append_loops {
  flushkit::journal* j;
  int remaining = 0;
  int completed = 0;
  int failures = 0;
  std::size_t at_warm = 0;
  std::array<std::byte, 64> payload{};

  void start(int n) {
    remaining = n;
    for (int i = 0; i < loops; ++i) next();
  }
  void next() {
    if (remaining <= 0) return;
    --remaining;
    j->async_append(asio::buffer(payload), [this](boost::system::error_code ec, lsn_t) {
      if (ec) ++failures;
      if (++completed == warmup) at_warm = flushkit::test::allocation_count.load();
      next();
    });
  }
};

asio::awaitable<void> append_loop(flushkit::journal* j, int n, int* failures) {
  const std::array<std::byte, 64> payload{};
  for (int i = 0; i < n; ++i) {
    const lsn_t lsn = co_await j->async_append(asio::buffer(payload)); // a failure throws
    if (lsn == 0) ++*failures;
  }
}

} // namespace

TEST_CASE("journal: 0 allocations over 100000 appends from 64 callback appenders") {
  flushkit::test::temp_dir dir("flushkit-journal-alloc");
  asio::io_context io;
  auto j = flushkit::journal::open(io, dir.path().c_str(), options());
  REQUIRE(j);
  append_loops l{&*j};
  l.start(warmup + measured);
  io.run(); // one run: Asio's per-thread handler cache lives in it
  const std::size_t allocs = flushkit::test::allocation_count.load() - l.at_warm;
  flushkit::test::report_allocations(allocs, measured);
  CHECK(allocs == 0);
  CHECK(l.failures == 0);
  const flushkit::journal_stats s = j->stats();
  CHECK(s.appends == warmup + measured);
  CHECK(s.average_batch() > 1.0); // group commit: many appends per backend flush
  CHECK(s.rotations == 0);
}

TEST_CASE("journal: 0 allocations over 20000 appends awaited by a coroutine with the default token") {
  flushkit::test::temp_dir dir("flushkit-journal-alloc");
  asio::io_context io;
  auto j = flushkit::journal::open(io, dir.path().c_str(), options());
  REQUIRE(j);
  int failures = 0;
  std::size_t allocs = ~std::size_t{0};
  asio::co_spawn(io, append_loop(&*j, warmup, &failures), asio::detached);
  io.run();
  io.restart();
  asio::co_spawn(io, flushkit::test::coroutine_allocations(&append_loop, &*j, measured_qd1, &failures, &allocs),
                 asio::detached);
  io.run();
  flushkit::test::report_allocations(allocs, measured_qd1);
  CHECK(allocs == 0);
  CHECK(failures == 0);
  CHECK(j->stats().appends == warmup + 1 + measured_qd1);
}
