// tests/testing/volatile_segment_store.cpp - the simulated segment store: what a power cut keeps, the operation
// budget, the segment limit.
#include <flushkit/testing/volatile_segment_store.hpp>

#include <doctest/doctest.h>

#include <vector>

using flushkit::errc;
using flushkit::testing::crash_policy;
using flushkit::testing::volatile_segment_store;

TEST_CASE("volatile_segment_store: synced writes survive a power cut, unsynced ones as the policy says") {
  volatile_segment_store s({.segment_bytes = 4096});
  REQUIRE_FALSE(s.create(0));
  const std::vector<std::byte> a(16, std::byte{0xaa}), b(16, std::byte{0xbb});
  REQUIRE_FALSE(s.write(0, 0, a));
  REQUIRE_FALSE(s.sync(0));
  REQUIRE_FALSE(s.write(0, 100, b)); // pending
  std::vector<std::byte> back(16);
  REQUIRE_FALSE(s.read(0, 100, back));
  CHECK(back == b); // readable before the cut
  s.reboot(crash_policy::drop_all());
  REQUIRE_FALSE(s.read(0, 0, back));
  CHECK(back == a);
  REQUIRE_FALSE(s.read(0, 100, back));
  CHECK(back == std::vector<std::byte>(16)); // the unsynced write was lost
  REQUIRE_FALSE(s.write(0, 100, b));
  s.reboot(crash_policy::keep_all());
  REQUIRE_FALSE(s.read(0, 100, back));
  CHECK(back == b);
}

TEST_CASE("volatile_segment_store: the power goes off after the budget, and every operation fails until reboot") {
  volatile_segment_store s({.segment_bytes = 4096});
  s.cut_power_after(2);
  CHECK_FALSE(s.create(0));
  CHECK_FALSE(s.sync(0));
  CHECK(s.create(1) == errc::io_error);
  CHECK_FALSE(s.powered());
  std::vector<std::byte> back(8);
  CHECK(s.read(0, 0, back) == errc::io_error);
  CHECK(s.write(0, 0, back) == errc::io_error);
  CHECK(s.operations() == 4);
  s.reboot(crash_policy::drop_all());
  CHECK(s.powered());
  CHECK_FALSE(s.create(1));
  std::vector<std::uint64_t> idx;
  CHECK_FALSE(s.list(idx));
  CHECK(idx == std::vector<std::uint64_t>{0, 1}); // created segments are durable at once
}

TEST_CASE("volatile_segment_store: creating beyond max_segments is no_space; out-of-range I/O is refused") {
  volatile_segment_store s({.segment_bytes = 4096, .max_segments = 1});
  CHECK_FALSE(s.create(0));
  CHECK(s.create(1) == errc::no_space);
  s.set_max_segments(0);
  CHECK_FALSE(s.create(1));
  std::vector<std::byte> b(8);
  CHECK(s.write(0, 4090, b) == errc::invalid_request);
  CHECK(s.write(9, 0, b) == errc::invalid_request);
  CHECK_FALSE(s.remove(0));
  CHECK(s.remove(0) == errc::io_error);
  CHECK(s.durable_image(0).empty());
}
