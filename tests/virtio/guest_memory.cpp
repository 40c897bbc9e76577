#include <flushkit/virtio/guest_memory.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <ostream>

namespace fv = flushkit::virtio;
using flushkit::errc;

TEST_SUITE("virtio/guest_memory") {

TEST_CASE("translate accepts ranges inside one region and rejects everything else") {
  alignas(64) static std::byte a[4096];
  alignas(64) static std::byte b[4096];
  fv::guest_memory m;
  REQUIRE_FALSE(m.add_region(0x10000, a, sizeof a));
  REQUIRE_FALSE(m.add_region(0x11000, b, sizeof b)); // adjacent in guest space
  CHECK(m.translate(0x10000, 1) == a);
  CHECK(m.translate(0x10000, 4096) == a);
  CHECK(m.translate(0x10fff, 1) == a + 4095);
  CHECK(m.translate(0x11000, 16) == b);
  CHECK(m.translate(0x10ffe, 4) == nullptr);  // straddles the two regions
  CHECK(m.translate(0x10000, 4097) == nullptr);
  CHECK(m.translate(0x12000, 1) == nullptr);  // past the end
  CHECK(m.translate(0xffff, 2) == nullptr);   // starts before
  CHECK(m.translate(0x10000, 0) == nullptr);  // empty ranges never translate
  CHECK(m.translate(~0ull, 2) == nullptr);    // addr + len overflows
  CHECK(m.translate(0x10010, ~0ull) == nullptr);
  CHECK(m.translate(0x10010, ~0ull - 0x10000) == nullptr);
}

TEST_CASE("add_region rejects overlap overflow null empty misalignment and too many regions") {
  alignas(64) static std::byte a[8192];
  fv::guest_memory m;
  CHECK(m.add_region(0x1000, nullptr, 16) == errc::invalid_request);
  CHECK(m.add_region(0x1000, a, 0) == errc::invalid_request);
  CHECK(m.add_region(~0ull - 15, a, 32) == errc::invalid_request);
  CHECK(m.add_region(0x1008, a, 64) == errc::invalid_request); // host and guest differ mod 16
  REQUIRE_FALSE(m.add_region(0x1000, a, 64));
  CHECK(m.add_region(0x1030, a + 64, 64) == errc::invalid_request); // overlaps the first
  CHECK(m.add_region(0x0fd0, a + 64, 64) == errc::invalid_request);
  for (std::size_t i = 1; i < fv::guest_memory::max_regions; ++i)
    REQUIRE_FALSE(m.add_region(0x100000 * (i + 1), a + 64 * i, 64));
  CHECK(m.add_region(0x7000000, a + 4096, 64) == errc::no_space);
  CHECK(m.region_count() == fv::guest_memory::max_regions);
}

TEST_CASE("guest_address is the inverse of translate") {
  alignas(64) static std::byte a[256];
  fv::guest_memory m(0x4000, a, sizeof a);
  CHECK(m.region_count() == 1);
  CHECK(m.guest_address(a + 10, 4) == 0x400a);
  CHECK(m.translate(*m.guest_address(a + 10, 4), 4) == a + 10);
  CHECK_FALSE(m.guest_address(a + 250, 8).has_value());
  CHECK_FALSE(m.guest_address(a, 0).has_value());
  static std::byte other[16];
  CHECK_FALSE(m.guest_address(other, 1).has_value());
}

} // TEST_SUITE
