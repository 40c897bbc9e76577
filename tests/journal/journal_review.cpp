// tests/journal/journal_review.cpp - regressions found by the adversarial review: power cuts during recovery and
// around release, a failed deletion, and records recovery found but nobody had synced.
#include <flushkit/journal/journal.hpp>

#include <flushkit/testing/volatile_segment_store.hpp>

#include "support/journal_support.hpp"

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

using flushkit::errc;
using flushkit::lsn_t;
using flushkit::status;
using flushkit::testing::crash_policy;
using flushkit::testing::volatile_segment_store;
using flushkit::test::make_payload;

namespace {

/// A segment_store forwarding to a volatile_segment_store, with hooks that
/// fail a remove or a sync, or hold one until another thread has acted: the
/// interleavings a real disk produces only by chance.
struct hooked_store {
  volatile_segment_store* inner;
  std::function<status(std::uint64_t)> on_remove{};
  std::function<status(std::uint64_t)> on_sync{};
  std::function<void(std::uint64_t)> after_remove{};

  std::uint64_t segment_bytes() const noexcept { return inner->segment_bytes(); }
  status list(std::vector<std::uint64_t>& o) { return inner->list(o); }
  status create(std::uint64_t i) { return inner->create(i); }
  status remove(std::uint64_t i) {
    if (on_remove)
      if (status st = on_remove(i)) return st;
    const status st = inner->remove(i);
    if (after_remove) after_remove(i);
    return st;
  }
  status write(std::uint64_t i, std::uint64_t o, std::span<const std::byte> b) { return inner->write(i, o, b); }
  status read(std::uint64_t i, std::uint64_t o, std::span<std::byte> b) { return inner->read(i, o, b); }
  status sync(std::uint64_t i) {
    if (on_sync)
      if (status st = on_sync(i)) return st;
    return inner->sync(i);
  }
};
using hooked_journal = flushkit::basic_journal<hooked_store&>;
using plain_journal = flushkit::basic_journal<volatile_segment_store&>;

std::vector<std::vector<std::byte>> payloads(std::uint64_t first, std::size_t n, std::size_t size) {
  std::vector<std::vector<std::byte>> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(make_payload(first + i, size));
  return out;
}

} // namespace

TEST_CASE("journal review: a power cut while recovery deletes segments leaves a journal that still opens") {
  volatile_segment_store store({.segment_bytes = 4096});
  boost::asio::io_context io;
  flushkit::journal_options o;
  o.spare_segments = 2;
  {
    auto j = plain_journal::open(io, store, o);
    REQUIRE(j);
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 3, 100)));
  }
  // Data in segments 1 and 2 after the end of the log: recovery deletes both.
  const std::vector<std::byte> junk(8, std::byte{0x77});
  REQUIRE_FALSE(store.write(1, 200, junk));
  REQUIRE_FALSE(store.write(2, 200, junk));
  REQUIRE_FALSE(store.sync(1));
  REQUIRE_FALSE(store.sync(2));
  store.cut_power_after(2); // the sync of segment 0 and the first deletion run; the second fails
  CHECK_FALSE(plain_journal::open(io, store, o));
  store.reboot(crash_policy::drop_all());
  auto j = plain_journal::open(io, store, o);
  REQUIRE(j); // no gap in the numbering: the highest segment went first
  CHECK(j->recovery().records == 3);
}

TEST_CASE("journal review: a released segment is deleted only once the next segment's header is durable") {
  volatile_segment_store vs({.segment_bytes = 4096});
  hooked_store store{&vs};
  std::mutex m;
  std::condition_variable cv;
  bool removed0 = false, fired = false;
  store.after_remove = [&](std::uint64_t i) {
    std::lock_guard lock(m);
    removed0 |= i == 0;
    cv.notify_all();
  };
  store.on_sync = [&](std::uint64_t i) -> status {
    if (i != 1 || fired) return {};
    fired = true;
    std::unique_lock lock(m);
    // Before the fix the keeper deleted segment 0 here; now it must not, so wait a bounded time for it.
    cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return removed0; });
    vs.cut_power(); // before segment 1's first sync
    return make_error_code(errc::io_error);
  };
  boost::asio::io_context io;
  {
    auto j = hooked_journal::open(io, store);
    REQUIRE(j);
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 3, 1000))); // LSN 1..3 in segment 0
    j->release(4);
    const auto b = flushkit::test::append_all(*j, io, payloads(4, 1, 1500)); // rotation into segment 1
    CHECK(b.at(0).ec == errc::io_error);
  }
  CHECK_FALSE(removed0);
  vs.reboot(crash_policy::drop_all());
  store.on_sync = {};
  auto j = hooked_journal::open(io, store);
  REQUIRE(j);
  CHECK_FALSE(j->recovery().created); // not a new journal numbering from 1 again
  CHECK(j->recovery().next_lsn == 4);
}

TEST_CASE("journal review: a failed deletion keeps every later segment until the next release") {
  volatile_segment_store vs({.segment_bytes = 4096});
  hooked_store store{&vs};
  int failures_left = 1;
  store.on_remove = [&](std::uint64_t i) -> status {
    if (i == 0 && failures_left > 0) return --failures_left, make_error_code(errc::io_error);
    return {};
  };
  boost::asio::io_context io;
  {
    auto j = hooked_journal::open(io, store);
    REQUIRE(j);
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 20, 1000))); // 4 per segment: 0..4
    CHECK(j->release(j->durable_lsn()) == 4);
    j->close_and_wait();
    CHECK(j->stats().remove_failures == 1);
    CHECK(j->stats().segments_removed == 0); // nothing after the failed one
  }
  {
    auto j = hooked_journal::open(io, store);
    REQUIRE(j); // no gap
    CHECK(j->recovery().first_lsn == 1);
    j->release(17); // a new checkpoint tries again
    j->close_and_wait();
    CHECK(j->stats().segments_removed == 4);
  }
  auto j = hooked_journal::open(io, store);
  REQUIRE(j);
  CHECK(j->recovery().first_lsn == 17);
  CHECK(j->recovery().last_lsn == 20);
}

TEST_CASE("journal review: records recovery found but nobody synced are made durable before use") {
  volatile_segment_store vs({.segment_bytes = 4096});
  hooked_store store{&vs};
  boost::asio::io_context io;
  {
    auto j = hooked_journal::open(io, store);
    REQUIRE(j);
    static_cast<void>(flushkit::test::append_all(*j, io, payloads(1, 1, 100))); // LSN 1, synced
    int syncs = 0;
    store.on_sync = [&](std::uint64_t) -> status { return ++syncs == 1 ? make_error_code(errc::io_error) : status{}; };
    const auto b = flushkit::test::append_all(*j, io, payloads(2, 1, 100)); // LSN 2 written, its sync failed
    CHECK(b.at(0).ec == errc::io_error);
  }
  store.on_sync = {};
  {
    auto j = hooked_journal::open(io, store); // a restart with the page cache intact (a killed process)
    REQUIRE(j);
    CHECK(j->recovery().records == 2);
    CHECK(j->durable_lsn() == 2); // reported durable: it must be
  }
  vs.reboot(crash_policy::drop_all()); // power cut
  auto j = hooked_journal::open(io, store);
  REQUIRE(j);
  CHECK(j->recovery().records == 2);
}
