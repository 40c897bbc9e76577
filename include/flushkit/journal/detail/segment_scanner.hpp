// flushkit/journal/detail/segment_scanner.hpp - reads one segment's records until the first invalid one.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/journal/record.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace flushkit::journal_detail {

/// One valid record, as a scanner found it. `payload` points into the
/// scanner's window and is valid until its next call.
struct scanned_record {
  lsn_t lsn = 0;
  std::uint64_t segment = 0;
  std::uint64_t offset = 0; ///< of the record header in the segment
  std::span<const std::byte> payload;
};

/// Walks one segment of a `segment_store`: the header, then record after
/// record while each is valid (length fits, LSN continues, CRC matches).
/// Shared by recovery and `journal_reader`, so both stop at the same byte.
/// Reads through a window of `window_bytes` (grown for a longer record).
template <class Store> class segment_scanner {
public:
  explicit segment_scanner(Store& store, std::size_t window_bytes = std::size_t{1} << 20)
      : store_(&store), segment_bytes_(store.segment_bytes()),
        window_(static_cast<std::size_t>(std::min<std::uint64_t>(window_bytes, segment_bytes_))) {}

  /// Starts on segment `index`: reads its header into `header`, empty when
  /// it is not a valid header of that segment (never activated, torn, or of
  /// another size or index). Errors: the store's read error.
  [[nodiscard]] status open(std::uint64_t index, std::optional<journal_format::segment_header>& header) {
    index_ = index;
    window_len_ = 0;
    header.reset();
    std::array<std::byte, journal_format::segment_header_bytes> raw{};
    if (status st = store_->read(index, 0, raw)) return st;
    const auto h = journal_format::decode_segment_header(raw);
    if (!h || h->index != index || h->segment_bytes != segment_bytes_ || h->base_lsn == 0) return {};
    header = h;
    offset_ = journal_format::segment_header_bytes;
    next_lsn_ = h->base_lsn;
    return {};
  }

  /// The next record: sets `found` and `out`, or clears `found` at the end
  /// of the segment's valid records (`offset()` then stays where the
  /// invalid bytes begin). Errors: the store's read error.
  [[nodiscard]] status next(scanned_record& out, bool& found) {
    found = false;
    constexpr std::size_t hdr = journal_format::record_header_bytes;
    if (segment_bytes_ - offset_ < hdr + 1) return {};
    const std::byte* h = nullptr;
    if (status st = load(offset_, hdr, h)) return st;
    const journal_format::record_header rh = journal_format::decode_record_header(std::span<const std::byte, hdr>(h, hdr));
    if (rh.length == 0 || rh.length > segment_bytes_ - offset_ - hdr || rh.lsn != next_lsn_) return {};
    const std::byte* rec = nullptr;
    if (status st = load(offset_, hdr + rh.length, rec)) return st;
    const std::span<const std::byte> payload(rec + hdr, rh.length);
    if (!journal_format::record_crc_matches(std::span<const std::byte, hdr>(rec, hdr), payload)) return {};
    out = {rh.lsn, index_, offset_, payload};
    found = true;
    offset_ += hdr + rh.length;
    ++next_lsn_;
    return {};
  }

  /// Offset just past the last valid record (the header's end before any).
  std::uint64_t offset() const noexcept { return offset_; }
  /// The LSN the next record must carry.
  lsn_t next_lsn() const noexcept { return next_lsn_; }

private:
  // Makes [at, at + n) of the segment readable at `p`, reading a window.
  [[nodiscard]] status load(std::uint64_t at, std::size_t n, const std::byte*& p) {
    if (at < window_at_ || at + n > window_at_ + window_len_) {
      if (window_.size() < n) window_.resize(n);
      const auto len = static_cast<std::size_t>(std::min<std::uint64_t>(window_.size(), segment_bytes_ - at));
      if (status st = store_->read(index_, at, std::span<std::byte>(window_.data(), len))) return st;
      window_at_ = at;
      window_len_ = len;
    }
    p = window_.data() + (at - window_at_);
    return {};
  }

  Store* store_;
  std::uint64_t segment_bytes_;
  std::vector<std::byte> window_;
  std::uint64_t window_at_ = 0;
  std::size_t window_len_ = 0;
  std::uint64_t index_ = 0;
  std::uint64_t offset_ = 0;
  lsn_t next_lsn_ = 0;
};

} // namespace flushkit::journal_detail
