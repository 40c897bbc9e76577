// flushkit/journal/reader.hpp - iterates a journal's records from an LSN.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/journal/detail/segment_scanner.hpp>
#include <flushkit/journal/record.hpp>
#include <flushkit/journal/segment_store.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace flushkit {

/// One record read back: its LSN and payload. The payload points into the
/// reader and is valid until its next `next()`.
struct journal_record {
  lsn_t lsn = 0;
  std::span<const std::byte> payload;
};

/// Reads a journal's records in LSN order, from `from` up to `until`, with
/// the same validity rules as recovery (the first invalid record ends the
/// log). It does not modify the store: it reads a journal that is closed,
/// or, through `basic_journal::read_from`, one that is open (bounded by its
/// durable LSN, so it reads only bytes that no longer change).
///
/// Thread-safety: one thread at a time. Allocation: a segment list and a
/// read window at the first `next()`.
template <segment_store_or_ref Store> class journal_reader {
public:
  /// A reader over `store` (moved in, or referenced for `Store = S&`) of
  /// the records with `from <= lsn <= until` (`from == 0`: the oldest).
  explicit journal_reader(Store store, lsn_t from = 0, lsn_t until = std::numeric_limits<lsn_t>::max())
      : store_(std::forward<Store>(store)), from_(from), until_(until) {}

  /// The next record into `out`: true, or false at the end of the log (or
  /// past `until`) and after an error (`error()` tells which).
  bool next(journal_record& out) {
    if (done_) return false;
    if (!started_ && !start()) return finish();
    for (;;) {
      journal_detail::scanned_record rec;
      bool found = false;
      if ((error_ = scanner_->next(rec, found))) return finish();
      if (!found && !advance()) return finish();
      if (!found) continue;
      if (rec.lsn > until_) return finish();
      if (rec.lsn < from_) continue;
      out = {rec.lsn, rec.payload};
      return true;
    }
  }

  /// Why reading stopped early: the store's read error (success at the end of the log).
  status error() const noexcept { return error_; }

private:
  bool finish() noexcept {
    done_ = true;
    return false;
  }

  // Lists the segments and opens the last one whose base is <= from.
  bool start() {
    started_ = true;
    if ((error_ = store_.list(indices_)) || indices_.empty()) return false;
    scanner_.emplace(store_);
    std::size_t first = 0;
    for (std::size_t i = 0; i < indices_.size(); ++i) {
      std::optional<journal_format::segment_header> h;
      if ((error_ = scanner_->open(indices_[i], h)) || !h) break;
      if (i != 0 && h->base_lsn > from_) break;
      first = i;
    }
    return open_at(first, 0);
  }

  // Opens segment `i`; a base other than `expected` (when given) ends the log.
  bool open_at(std::size_t i, lsn_t expected) {
    if (i >= indices_.size() || (i != 0 && indices_[i] != indices_[i - 1] + 1)) return false;
    std::optional<journal_format::segment_header> h;
    if ((error_ = scanner_->open(indices_[i], h)) || !h) return false;
    if (expected != 0 && h->base_lsn != expected) return false;
    position_ = i;
    return true;
  }

  bool advance() { return open_at(position_ + 1, scanner_->next_lsn()); }

  Store store_;
  lsn_t from_, until_;
  std::vector<std::uint64_t> indices_;
  std::optional<journal_detail::segment_scanner<std::remove_reference_t<Store>>> scanner_;
  std::size_t position_ = 0;
  status error_;
  bool started_ = false, done_ = false;
};

} // namespace flushkit
