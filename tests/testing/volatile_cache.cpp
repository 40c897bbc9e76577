#include <flushkit/testing/volatile_cache.hpp>

#include <flushkit/core/region.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <boost/asio/io_context.hpp>

#include "support/cache_bytes.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ostream> // doctest prints a status through operator<<
#include <thread>
#include <vector>

namespace ft = flushkit::testing;
using flushkit::errc;
using flushkit::make_error_code;

namespace {

constexpr std::size_t medium_size = 8192;

ft::volatile_cache make_cache(std::size_t entries = 64, std::size_t bytes = 64 * 1024) {
  return ft::volatile_cache({medium_size, entries, bytes});
}

using flushkit::test::all_of;
using flushkit::test::put;

std::vector<std::byte> image_after(const ft::volatile_cache& base, const ft::crash_policy& p) {
  ft::volatile_cache c(base);
  c.crash(p);
  const auto img = c.recover();
  return {img.begin(), img.end()};
}

} // namespace

TEST_SUITE("testing/volatile_cache") {

TEST_CASE("a flush makes noted writes durable and the durable image is separate from the view") {
  auto c = make_cache();
  put(c, 100, 50, 0xAA);
  CHECK(all_of(c.medium(), 100, 50, 0xAA));
  CHECK(all_of(c.durable(), 100, 50, 0x00));
  CHECK(c.pending_writes() == 1);
  CHECK_FALSE(c.flush());
  CHECK(all_of(c.durable(), 100, 50, 0xAA));
  CHECK(c.pending_writes() == 0);
  const auto k = c.counters();
  CHECK(k.writes_noted == 1);
  CHECK(k.bytes_noted == 50);
  CHECK(k.flushes_issued == 1);
  CHECK(k.flushes_completed == 1);
  CHECK(k.writes_made_durable == 1);
}

TEST_CASE("a flush covers exactly the writes noted before it was issued") {
  auto c = make_cache();
  put(c, 0, 16, 0x11);
  const auto ticket = c.issue_flush();
  put(c, 32, 16, 0x22); // after issue: not covered
  CHECK_FALSE(c.complete_flush(ticket));
  CHECK(all_of(c.durable(), 0, 16, 0x11));
  CHECK(all_of(c.durable(), 32, 16, 0x00));
  CHECK(c.pending_writes() == 1);
  c.crash(ft::crash_policy::drop_all());
  const auto img = c.recover();
  CHECK(all_of(img, 0, 16, 0x11));
  CHECK(all_of(img, 32, 16, 0x00));
}

TEST_CASE("drop_all loses every pending write and keeps the durable ones") {
  auto c = make_cache();
  put(c, 0, 64, 0x01);
  REQUIRE_FALSE(c.flush());
  put(c, 0, 32, 0x02);
  put(c, 128, 32, 0x03);
  c.crash(ft::crash_policy::drop_all());
  CHECK(all_of(c.medium(), 0, 64, 0x01)); // the view is lost with the power
  const auto img = c.recover();
  CHECK(all_of(img, 0, 64, 0x01));
  CHECK(all_of(img, 128, 32, 0x00));
  const auto k = c.counters();
  CHECK(k.crashes == 1);
  CHECK(k.writes_lost_at_crash == 2);
  CHECK(k.writes_kept_at_crash == 0);
}

TEST_CASE("keep_subset keeps exactly the selected writes in the chosen order") {
  auto c = make_cache();
  put(c, 0, 16, 0x01);  // pending 0
  put(c, 8, 16, 0x02);  // pending 1, overlaps 0 on [8, 16)
  put(c, 64, 8, 0x03);  // pending 2
  SUBCASE("mask selects") {
    const auto img = image_after(c, ft::crash_policy::keep(0b101));
    CHECK(all_of(img, 0, 16, 0x01));
    CHECK(all_of(img, 16, 8, 0x00));
    CHECK(all_of(img, 64, 8, 0x03));
  }
  SUBCASE("oldest first: the newer write wins the overlap") {
    const auto img = image_after(c, ft::crash_policy::keep(0b011, ft::apply_order::oldest_first));
    CHECK(all_of(img, 0, 8, 0x01));
    CHECK(all_of(img, 8, 16, 0x02));
  }
  SUBCASE("newest first: the older write wins the overlap") {
    const auto img = image_after(c, ft::crash_policy::keep(0b011, ft::apply_order::newest_first));
    CHECK(all_of(img, 0, 16, 0x01));
    CHECK(all_of(img, 16, 8, 0x02));
  }
  SUBCASE("prefix and keep_all") {
    auto img = image_after(c, ft::crash_policy::prefix(1));
    CHECK(all_of(img, 0, 16, 0x01));
    CHECK(all_of(img, 16, 8, 0x00));
    CHECK(all_of(img, 64, 8, 0x00));
    img = image_after(c, ft::crash_policy::keep_all());
    CHECK(all_of(img, 0, 8, 0x01));
    CHECK(all_of(img, 8, 16, 0x02));
    CHECK(all_of(img, 64, 8, 0x03));
  }
}

TEST_CASE("random_subset keeps whole writes and is replayable from its seed") {
  auto c = make_cache();
  for (std::uint8_t i = 0; i < 8; ++i) put(c, i * 100u, 100, static_cast<std::uint8_t>(i + 1));
  std::array<int, 8> kept_count{};
  for (std::uint64_t seed = 0; seed < 64; ++seed) {
    const auto img = image_after(c, ft::crash_policy::random_subset(seed));
    CHECK(img == image_after(c, ft::crash_policy::random_subset(seed)));
    for (std::size_t i = 0; i < 8; ++i) {
      const auto v = static_cast<std::uint8_t>(i + 1);
      const bool whole = all_of(img, i * 100, 100, v);
      CHECK((whole || all_of(img, i * 100, 100, 0)));
      kept_count[i] += whole ? 1 : 0;
    }
  }
  for (int n : kept_count) { // each write is kept by some seeds and lost by others
    CHECK(n > 0);
    CHECK(n < 64);
  }
}

TEST_CASE("torn writes keep a random subset of aligned atomic units") {
  for (std::size_t unit : {std::size_t{8}, std::size_t{64}, std::size_t{512}, std::size_t{4096}}) {
    CAPTURE(unit);
    auto c = make_cache();
    const std::size_t off = 3, len = std::min<std::size_t>(unit * 6, medium_size - 3) - 10;
    put(c, off, len, 0x5A);
    std::size_t torn = 0;
    for (std::uint64_t seed = 0; seed < 32; ++seed) {
      ft::volatile_cache copy(c);
      copy.crash(ft::crash_policy::torn(unit, seed));
      const auto img = copy.recover();
      torn += copy.counters().writes_torn_at_crash;
      // Each aligned unit is all new or all old; nothing outside the write changes.
      for (std::size_t u = 0; u * unit < medium_size; ++u) {
        const std::size_t lo = std::max(off, u * unit), hi = std::min(off + len, (u + 1) * unit);
        if (lo >= hi) continue;
        CHECK((all_of(img, lo, hi - lo, 0x5A) || all_of(img, lo, hi - lo, 0x00)));
      }
      CHECK(all_of(img, 0, off, 0x00));
      CHECK(all_of(img, off + len, medium_size - off - len, 0x00));
    }
    CHECK(torn > 0);
  }
}

TEST_CASE("a failed flush that drops its data is not resurrected by a later successful flush") {
  auto c = make_cache();
  put(c, 0, 32, 0x77);
  c.fail_next_flush(make_error_code(errc::io_error), true);
  CHECK(c.flush() == make_error_code(errc::io_error));
  CHECK(c.pending_writes() == 0);
  CHECK(all_of(c.medium(), 0, 32, 0x77)); // still visible until the power goes
  put(c, 64, 8, 0x88);
  CHECK_FALSE(c.flush());
  CHECK(all_of(c.durable(), 0, 32, 0x00));
  CHECK(all_of(c.durable(), 64, 8, 0x88));
  c.crash(ft::crash_policy::keep_all());
  const auto img = c.recover();
  CHECK(all_of(img, 0, 32, 0x00));
  CHECK(all_of(img, 64, 8, 0x88));
  const auto k = c.counters();
  CHECK(k.flushes_failed == 1);
  CHECK(k.writes_dropped_by_flush_error == 1);
}

TEST_CASE("a failed flush that keeps its data lets a later flush succeed") {
  auto c = make_cache();
  put(c, 0, 32, 0x66);
  c.fail_next_flush(make_error_code(errc::timeout), false);
  CHECK(c.flush() == make_error_code(errc::timeout));
  CHECK(c.pending_writes() == 1);
  CHECK(all_of(c.durable(), 0, 32, 0x00));
  CHECK_FALSE(c.flush());
  CHECK(all_of(c.durable(), 0, 32, 0x66));
}

TEST_CASE("recovery is idempotent and a crash during recovery changes nothing") {
  auto c = make_cache();
  put(c, 10, 10, 0x10);
  REQUIRE_FALSE(c.flush());
  put(c, 30, 10, 0x20);
  c.crash(ft::crash_policy::keep_all());
  const auto first = c.recover();
  const std::vector<std::byte> a(first.begin(), first.end());
  const auto second = c.recover();
  CHECK(std::equal(a.begin(), a.end(), second.begin(), second.end()));
  c.crash(ft::crash_policy::torn(8, 99));
  const auto third = c.recover();
  CHECK(std::equal(a.begin(), a.end(), third.begin(), third.end()));
  CHECK(all_of(third, 30, 10, 0x20));
  CHECK(std::equal(a.begin(), a.end(), c.medium().begin(), c.medium().end())); // view reset to the image
}

TEST_CASE("recover without a crash discards pending writes") {
  auto c = make_cache();
  put(c, 0, 4, 0x01);
  const auto img = c.recover();
  CHECK(all_of(img, 0, 4, 0x00));
  CHECK(c.counters().writes_lost_at_crash == 1);
}

TEST_CASE("a full log is written back before the next write and counted") {
  auto c = make_cache(4, 1024);
  for (std::uint8_t i = 0; i < 5; ++i) put(c, i * 10u, 10, static_cast<std::uint8_t>(i + 1));
  auto k = c.counters();
  CHECK(k.forced_writebacks == 1);
  CHECK(c.pending_writes() == 1);
  for (std::uint8_t i = 0; i < 4; ++i) CHECK(all_of(c.durable(), i * 10u, 10, static_cast<std::uint8_t>(i + 1)));
  put(c, 2000, 600, 0x40); // fits next to the one pending write
  put(c, 3000, 600, 0x41); // does not fit: written back first
  k = c.counters();
  CHECK(k.forced_writebacks == 2);
  CHECK(all_of(c.durable(), 2000, 600, 0x40));
  CHECK(all_of(c.durable(), 3000, 600, 0x00));
  put(c, 4000, 2000, 0x42); // larger than the log: written through
  k = c.counters();
  CHECK(k.writes_through == 1);
  CHECK(all_of(c.durable(), 3000, 600, 0x41));
  CHECK(all_of(c.durable(), 4000, 2000, 0x42));
  c.crash(ft::crash_policy::drop_all());
  CHECK(all_of(c.recover(), 4000, 2000, 0x42));
}

TEST_CASE("hooks report write noted, flush issued and flush completed in order") {
  auto c = make_cache();
  std::vector<ft::cache_event> seen;
  c.set_hook([](void* ctx, ft::cache_event ev, ft::volatile_cache&) {
    static_cast<std::vector<ft::cache_event>*>(ctx)->push_back(ev);
  }, &seen);
  put(c, 0, 1, 1);
  REQUIRE_FALSE(c.flush());
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == ft::cache_event::write_noted);
  CHECK(seen[1] == ft::cache_event::flush_issued);
  CHECK(seen[2] == ft::cache_event::flush_completed);
}

TEST_CASE("as a pmem_device provider FUA and PREFLUSH make the right writes durable") {
  boost::asio::io_context io; // the device's executor (submit only: nothing runs on it)
  auto c = make_cache();
  flushkit::pmem::pmem_device<flushkit::region<ft::volatile_cache&>> dev(io, c.medium(), {}, c);
  std::array<std::uint8_t, 16> a{}, b{};
  a.fill(0xA1);
  b.fill(0xB2);
  flushkit::segment sa{a.data(), a.size()}, sb{b.data(), b.size()};
  flushkit::request plain(flushkit::req_op::write, 0, {&sa, 1});
  dev.submit(plain);
  REQUIRE(plain.completed());
  CHECK_FALSE(plain.result());
  CHECK(all_of(c.durable(), 0, 16, 0x00));
  flushkit::request fua(flushkit::req_op::write, 100, {&sb, 1}, flushkit::req_flags::fua);
  dev.submit(fua);
  REQUIRE(fua.completed());
  CHECK_FALSE(fua.result());
  CHECK(all_of(c.durable(), 100, 16, 0xB2));
  CHECK(all_of(c.durable(), 0, 16, 0xA1)); // written before the FUA's flush was issued
  flushkit::request late(flushkit::req_op::write, 200, {&sa, 1});
  dev.submit(late);
  flushkit::request pre(flushkit::req_op::write, 300, {&sb, 1}, flushkit::req_flags::preflush);
  dev.submit(pre);
  CHECK(all_of(c.durable(), 200, 16, 0xA1)); // covered by the PREFLUSH
  CHECK(all_of(c.durable(), 300, 16, 0x00)); // its own data is not
  c.fail_next_flush(make_error_code(errc::io_error), true);
  flushkit::request failing(flushkit::req_op::write, 400, {&sa, 1}, flushkit::req_flags::fua);
  dev.submit(failing);
  CHECK(failing.result() == make_error_code(errc::io_error)); // the region's policy
  c.crash(ft::crash_policy::keep_all());
  const auto img = c.recover();
  CHECK(all_of(img, 300, 16, 0x00)); // dropped by the failed flush together with the FUA write
  CHECK(all_of(img, 400, 16, 0x00));
}

TEST_CASE("the async variant covers only writes noted before the flush request") {
  boost::asio::io_context io;
  auto c = make_cache();
  ft::async_volatile_cache<> provider(c, io.get_executor());
  flushkit::request req(flushkit::req_op::flush, 0, {}, flushkit::req_flags::preflush);
  put(c, 0, 8, 0x01);
  const flushkit::flush_result r = provider.flush(req);
  REQUIRE(r.is_async());
  put(c, 8, 8, 0x02); // noted after issue
  CHECK_FALSE(req.completed());
  io.run();
  REQUIRE(req.completed());
  CHECK_FALSE(req.result());
  CHECK(all_of(c.durable(), 0, 8, 0x01));
  CHECK(all_of(c.durable(), 8, 8, 0x00));
  CHECK(c.pending_writes() == 1);
}

TEST_CASE("concurrent writers and flushers lose nothing") {
  for (int round = 0; round < 20; ++round) {
    auto c = make_cache(16, 4096); // small: forced write-backs happen under load
    std::thread w1([&] {
      for (std::size_t i = 0; i < 200; ++i) put(c, (i % 50) * 8, 8, 0x31);
    });
    std::thread w2([&] {
      for (std::size_t i = 0; i < 200; ++i) put(c, 4096 + (i % 50) * 8, 8, 0x32);
    });
    std::thread f([&] {
      for (int i = 0; i < 100; ++i) CHECK_FALSE(c.flush());
    });
    w1.join();
    w2.join();
    f.join();
    REQUIRE_FALSE(c.flush());
    CHECK(all_of(c.durable(), 0, 400, 0x31));
    CHECK(all_of(c.durable(), 4096, 400, 0x32));
    CHECK(c.counters().writes_noted == 400);
  }
}

TEST_CASE("a copy has the same state and crashes independently") {
  auto c = make_cache();
  put(c, 0, 8, 0x01);
  ft::volatile_cache copy(c);
  CHECK(copy.pending_writes() == 1);
  copy.crash(ft::crash_policy::keep_all());
  CHECK(all_of(copy.recover(), 0, 8, 0x01));
  CHECK(c.pending_writes() == 1);
  CHECK(all_of(c.durable(), 0, 8, 0x00));
  auto other = make_cache();
  other.assign(c);
  CHECK(other.pending_writes() == 1);
  CHECK(other.counters().writes_noted == 1);
}

} // TEST_SUITE
