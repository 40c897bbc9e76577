// tests/journal/record.cpp - the on-disk format: segment header and record framing, byte for byte.
#include <flushkit/journal/record.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <cstring>

namespace jf = flushkit::journal_format;

TEST_CASE("record format: the segment header is little-endian with a CRC32C over bytes 4..31") {
  std::array<std::byte, jf::segment_header_bytes> raw{};
  jf::encode_segment_header({0x0102030405060708ull, 42, 4096}, raw);
  CHECK(raw[4] == std::byte{0x46}); // 'F'
  CHECK(raw[7] == std::byte{0x31}); // '1'
  CHECK(raw[8] == std::byte{0x08}); // little-endian index
  CHECK(raw[15] == std::byte{0x01});
  CHECK(jf::load_le64(raw.data() + 16) == 42);
  CHECK(jf::load_le32(raw.data()) == flushkit::crc32c(std::span<const std::byte>(raw).subspan(4)));
  const auto h = jf::decode_segment_header(raw);
  REQUIRE(h);
  CHECK(h->index == 0x0102030405060708ull);
  CHECK(h->base_lsn == 42);
  CHECK(h->segment_bytes == 4096);
  for (std::size_t i = 0; i < raw.size(); ++i) { // any flipped bit is detected
    auto bad = raw;
    bad[i] ^= std::byte{0x10};
    CHECK_FALSE(jf::decode_segment_header(bad));
  }
  CHECK_FALSE(jf::decode_segment_header(std::array<std::byte, jf::segment_header_bytes>{})); // zeros: never activated
}

TEST_CASE("record format: header fields, CRC over header bytes 4..15 then the payload") {
  std::array<std::byte, jf::record_header_bytes + 5> rec{};
  const std::array<std::byte, 5> payload{std::byte{'h'}, std::byte{'e'}, std::byte{'l'}, std::byte{'l'}, std::byte{'o'}};
  std::span<std::byte, jf::record_header_bytes> header(rec.data(), jf::record_header_bytes);
  std::uint32_t crc = jf::begin_record(header, 5, 77);
  std::memcpy(rec.data() + jf::record_header_bytes, payload.data(), payload.size());
  crc = flushkit::crc32c(payload, crc);
  jf::seal_record(header, crc);
  const jf::record_header h = jf::decode_record_header(header);
  CHECK(h.length == 5);
  CHECK(h.lsn == 77);
  CHECK(h.crc == flushkit::crc32c(std::span<const std::byte>(rec).subspan(4))); // one pass over bytes 4..end
  CHECK(jf::record_crc_matches(header, payload));
  for (std::size_t i = 0; i < rec.size(); ++i) {
    if (i >= 4 && i < 16) continue; // length/LSN changes are caught by the scanner's own checks too
    auto bad = rec;
    bad[i] ^= std::byte{0x01};
    CHECK_FALSE(jf::record_crc_matches(std::span<const std::byte, jf::record_header_bytes>(bad.data(), 16),
                                       std::span<const std::byte>(bad).subspan(16)));
  }
  CHECK(jf::record_bytes(5) == 21);
}

TEST_CASE("record format: frame_record writes what the journal stages, seal_framed seals in place") {
  const std::array<std::byte, 3> payload{std::byte{1}, std::byte{2}, std::byte{3}};
  std::array<std::byte, jf::record_header_bytes + 3> a{}, b{};
  jf::frame_record(a.data(), payload, 9);
  std::memcpy(b.data() + jf::record_header_bytes, payload.data(), payload.size());
  jf::seal_framed(b.data(), 3, 9);
  CHECK(a == b);
  const jf::record_header h = jf::decode_record_header(std::span<const std::byte, jf::record_header_bytes>(a.data(), 16));
  CHECK(h.length == 3);
  CHECK(h.lsn == 9);
  CHECK(jf::record_crc_matches(std::span<const std::byte, 16>(a.data(), 16), payload));
}
