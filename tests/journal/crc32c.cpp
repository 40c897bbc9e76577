// tests/journal/crc32c.cpp - both CRC-32C engines against known vectors, each other, and chaining.
#include <flushkit/journal/crc32c.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <vector>

namespace {

using crc_fn = std::uint32_t (*)(std::span<const std::byte>, std::uint32_t) noexcept;

std::vector<std::byte> bytes_of(const char* s) {
  std::vector<std::byte> v(std::strlen(s));
  std::memcpy(v.data(), s, v.size());
  return v;
}

std::vector<std::byte> random_bytes(std::size_t n) {
  std::mt19937 rng(20261202);
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng() & 0xffu);
  return v;
}

// "123456789", RFC 3720 B.4 and the empty span.
void check_vectors(crc_fn f) {
  CHECK(f(bytes_of("123456789"), 0) == 0xE3069283u);
  CHECK(f({}, 0) == 0u);
  CHECK(f({}, 0xE3069283u) == 0xE3069283u); // no bytes: the running CRC is unchanged
  std::array<std::byte, 32> v{};
  CHECK(f(v, 0) == 0x8A9136AAu); // 32 zero bytes
  v.fill(std::byte{0xff});
  CHECK(f(v, 0) == 0x62A8AB43u); // 32 x 0xFF
  for (std::size_t i = 0; i < 32; ++i) v[i] = static_cast<std::byte>(i);
  CHECK(f(v, 0) == 0x46DD794Eu); // 0..31 ascending
  for (std::size_t i = 0; i < 32; ++i) v[i] = static_cast<std::byte>(31 - i);
  CHECK(f(v, 0) == 0x113FDB5Cu); // 31..0 descending
}

// crc(b, crc(a)) == crc(a ++ b) at random lengths and split points (empty halves included), and over three pieces.
void check_chaining(crc_fn f, const std::vector<std::byte>& buf) {
  const auto nine = bytes_of("123456789");
  CHECK(f(std::span<const std::byte>(nine).subspan(4), f(std::span<const std::byte>(nine).first(4), 0)) ==
        0xE3069283u);
  std::mt19937 rng(7);
  for (int i = 0; i < 500; ++i) {
    const std::size_t n = rng() % (buf.size() + 1);
    const std::size_t split = rng() % (n + 1);
    const std::span<const std::byte> all(buf.data(), n);
    CHECK(f(all.subspan(split), f(all.first(split), 0)) == f(all, 0));
    const std::size_t split2 = split + rng() % (n - split + 1);
    const std::uint32_t first_two = f(all.subspan(split, split2 - split), f(all.first(split), 0));
    CHECK(f(all.subspan(split2), first_two) == f(all, 0));
  }
}

} // namespace

TEST_CASE("crc32c: crc32c_selected() agrees with crc32c_hardware_available() and does not change") {
  const flushkit::crc32c_engine expected =
      flushkit::crc32c_hardware_available() ? flushkit::crc32c_engine::hardware : flushkit::crc32c_engine::portable;
  CHECK(flushkit::crc32c_selected() == expected);
  CHECK(flushkit::crc32c_selected() == expected);
  MESSAGE("selected engine: ", expected == flushkit::crc32c_engine::hardware ? "hardware" : "portable");
}

TEST_CASE("crc32c: the portable engine (Boost.CRC) gives the known vectors and chains") {
  check_vectors(&flushkit::crc32c_portable);
  check_chaining(&flushkit::crc32c_portable, random_bytes(300));
}

TEST_CASE("crc32c: the hardware engine gives the known vectors, equals the portable one, and chains") {
  if (!flushkit::crc32c_hardware_available()) {
    MESSAGE("no SSE4.2 on this CPU: the hardware engine is not tested");
    return;
  }
  check_vectors(&flushkit::crc32c_hardware);
  const auto buf = random_bytes(320);
  for (std::size_t misalign = 0; misalign < 8; ++misalign)
    for (std::size_t n = 0; n <= 300; ++n) {
      const std::span<const std::byte> s(buf.data() + misalign, n);
      CAPTURE(misalign);
      CAPTURE(n);
      REQUIRE(flushkit::crc32c_hardware(s, 0) == flushkit::crc32c_portable(s, 0));
      REQUIRE(flushkit::crc32c_hardware(s, 0x12345678u) == flushkit::crc32c_portable(s, 0x12345678u));
    }
  check_chaining(&flushkit::crc32c_hardware, buf);
}

TEST_CASE("crc32c: crc32c() gives the known vectors, equals both engines, and chains") {
  check_vectors([](std::span<const std::byte> b, std::uint32_t c) noexcept { return flushkit::crc32c(b, c); });
  const auto buf = random_bytes(300);
  CHECK(flushkit::crc32c(buf) == flushkit::crc32c_portable(buf));
  if (flushkit::crc32c_hardware_available()) CHECK(flushkit::crc32c(buf) == flushkit::crc32c_hardware(buf));
  check_chaining([](std::span<const std::byte> b, std::uint32_t c) noexcept { return flushkit::crc32c(b, c); }, buf);
}
