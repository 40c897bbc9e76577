// flushkit/journal/record.hpp - the on-disk format of a journal: segment header and record framing.
#pragma once

#include <flushkit/journal/crc32c.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace flushkit {

/// A log sequence number: records are numbered 1, 2, 3, ... (or from
/// `journal_options::first_lsn`) without gaps; 0 means "none".
using lsn_t = std::uint64_t;

/// The journal's on-disk format. Every integer is little-endian.
///
/// A segment file is `segment_bytes` long. It begins with a segment header
/// (32 bytes), written together with the segment's first records:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | CRC32C of bytes 4..31 |
/// | 4 | 4 | magic `"FKJ1"` (0x314A4B46) |
/// | 8 | 8 | segment index (the file name's number) |
/// | 16 | 8 | base LSN: the LSN of the segment's first record |
/// | 24 | 8 | segment size in bytes |
///
/// Records follow back to back; a record never straddles two segments (the
/// rest of a segment a record does not fit in stays zero):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | CRC32C of bytes 4..15 of the header, then of the payload |
/// | 4 | 4 | payload length (> 0) |
/// | 8 | 8 | LSN |
/// | 16 | length | payload |
///
/// A record is valid when its length fits in the segment, its LSN is the
/// one after the previous record's (the segment's base LSN for the first)
/// and its CRC matches. The first invalid record ends the log: zeros (a
/// never-written or zeroed tail), a torn write, or stale bytes all fail one
/// of the three checks, whatever byte a power cut tore the write at.
namespace journal_format {

inline constexpr std::uint32_t segment_magic = 0x314A4B46; // "FKJ1"
inline constexpr std::size_t segment_header_bytes = 32;
inline constexpr std::size_t record_header_bytes = 16;

/// A decoded segment header.
struct segment_header {
  std::uint64_t index = 0;
  lsn_t base_lsn = 0;
  std::uint64_t segment_bytes = 0;
};

/// A decoded record header.
struct record_header {
  std::uint32_t crc = 0;
  std::uint32_t length = 0;
  lsn_t lsn = 0;
};

inline void store_le32(std::byte* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline void store_le64(std::byte* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline std::uint32_t load_le32(const std::byte* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | std::to_integer<std::uint32_t>(p[i]);
  return v;
}
inline std::uint64_t load_le64(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}

/// Writes the header of segment `h` into `out` (CRC included).
inline void encode_segment_header(const segment_header& h, std::span<std::byte, segment_header_bytes> out) noexcept {
  store_le32(out.data() + 4, segment_magic);
  store_le64(out.data() + 8, h.index);
  store_le64(out.data() + 16, h.base_lsn);
  store_le64(out.data() + 24, h.segment_bytes);
  store_le32(out.data(), crc32c(out.subspan(4)));
}

/// The segment header in `in`, or nothing when the magic or the CRC is wrong
/// (a segment never activated reads as zeros).
inline std::optional<segment_header> decode_segment_header(std::span<const std::byte, segment_header_bytes> in) noexcept {
  if (load_le32(in.data() + 4) != segment_magic || load_le32(in.data()) != crc32c(in.subspan(4))) return std::nullopt;
  return segment_header{load_le64(in.data() + 8), load_le64(in.data() + 16), load_le64(in.data() + 24)};
}

/// Bytes a record with `payload` bytes takes in a segment.
constexpr std::size_t record_bytes(std::size_t payload) noexcept { return record_header_bytes + payload; }

/// Writes the length and LSN fields of a record header into `out` and
/// returns the CRC of those fields (to be extended over the payload and
/// stored with `seal_record`).
inline std::uint32_t begin_record(std::span<std::byte, record_header_bytes> out, std::uint32_t length,
                                  lsn_t lsn) noexcept {
  store_le32(out.data() + 4, length);
  store_le64(out.data() + 8, lsn);
  return crc32c(out.subspan(4));
}

/// Stores the finished CRC into the record header `out`.
inline void seal_record(std::span<std::byte, record_header_bytes> out, std::uint32_t crc) noexcept {
  store_le32(out.data(), crc);
}

/// Completes a record whose `length` payload bytes are already at
/// `out + record_header_bytes`: writes the header for `lsn` and its CRC.
inline void seal_framed(std::byte* out, std::uint32_t length, lsn_t lsn) noexcept {
  const std::span<std::byte, record_header_bytes> header(out, record_header_bytes);
  const std::uint32_t crc = begin_record(header, length, lsn);
  seal_record(header, crc32c(std::span<const std::byte>(out + record_header_bytes, length), crc));
}

/// Frames record `lsn` with `payload` into `out`, which has room for
/// `record_bytes(payload.size())`: exactly the bytes the journal writes.
inline void frame_record(std::byte* out, std::span<const std::byte> payload, lsn_t lsn) noexcept {
  std::memcpy(out + record_header_bytes, payload.data(), payload.size());
  seal_framed(out, static_cast<std::uint32_t>(payload.size()), lsn);
}

/// Decodes a record header (no validation).
inline record_header decode_record_header(std::span<const std::byte, record_header_bytes> in) noexcept {
  return {load_le32(in.data()), load_le32(in.data() + 4), load_le64(in.data() + 8)};
}

/// Whether `payload` matches the CRC of `h`, whose raw bytes are `header`.
inline bool record_crc_matches(std::span<const std::byte, record_header_bytes> header,
                               std::span<const std::byte> payload) noexcept {
  return load_le32(header.data()) == crc32c(payload, crc32c(header.subspan(4)));
}

} // namespace journal_format

} // namespace flushkit
