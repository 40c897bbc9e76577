// flushkit/journal/detail/journal_core.hpp - the journal's state, its flusher and its segment keeper.
#pragma once

#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/journal/detail/segment_scanner.hpp>
#include <flushkit/journal/journal_types.hpp>
#include <flushkit/journal/record.hpp>
#include <flushkit/journal/segment_store.hpp>

#include <boost/intrusive/list.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace flushkit::journal_detail {

/// Everything a journal is, behind the movable handle `basic_journal`.
///
/// Appenders stage records into the active one of two buffers under `mutex_`
/// (LSN assignment, framing, CRC and copy in one critical section, so the
/// buffer holds a contiguous LSN range in LSN order). The flusher thread
/// takes the whole active buffer (the other becomes active), writes it to
/// the current segment(s), syncs, and completes the batch in LSN order. The
/// keeper thread creates spare segments ahead of need and deletes released
/// ones. One batch is in flight at a time; the next fills meanwhile.
template <class Store> class journal_core {
  using store_type = std::remove_reference_t<Store>;
  using hook_type = boost::intrusive::member_hook<request, decltype(request::link_), &request::link_>;
  using request_list = boost::intrusive::list<request, hook_type, boost::intrusive::constant_time_size<true>>;
  using scanner_type = segment_scanner<store_type>;
  static constexpr std::size_t seg_hdr = journal_format::segment_header_bytes;
  static constexpr std::size_t rec_hdr = journal_format::record_header_bytes;

  struct live_segment {
    std::uint64_t index;
    lsn_t base;
    bool synced; ///< its header is durable: the segments before it may be deleted
  };

public:
  journal_core(Store store, const journal_options& opts)
      : store_(std::forward<Store>(store)), opts_(opts), segment_bytes_(store_.segment_bytes()),
        max_record_(max_record_for(opts, segment_bytes_)),
        buffer_bytes_(std::max(opts.buffer_bytes, journal_format::record_bytes(max_record_))) {
    for (auto& b : buffers_) b = std::make_unique<std::byte[]>(buffer_bytes_);
    live_.reserve(64);
  }
  journal_core(const journal_core&) = delete;
  journal_core& operator=(const journal_core&) = delete;
  ~journal_core() { close_and_wait(); }

  /// Options that cannot work: `invalid_request`.
  static status check(const journal_options& opts, std::uint64_t segment_bytes) noexcept {
    if (opts.buffer_bytes == 0 || opts.spare_segments == 0 || opts.first_lsn == 0) return invalid();
    if (segment_bytes < seg_hdr + rec_hdr + 1) return invalid();
    return {};
  }

  /// Recovery, the spare segments, then the threads. Blocks (reads the
  /// whole log, creates missing spares), so that the first rotation finds
  /// a spare ready. A spare that cannot be created now is retried by the
  /// first rotation (its error is not an open error).
  [[nodiscard]] status start() {
    if (status st = recover()) return st;
    while (created_upto_ < current_locked_ + opts_.spare_segments) {
      if ((keeper_error_ = store_.create(created_upto_ + 1))) break;
      ++created_upto_;
      ++stats_.segments_created;
    }
    flusher_ = std::thread([this] { run_flusher(); });
    keeper_ = std::thread([this] { run_keeper(); });
    return {};
  }

  // ---- appends --------------------------------------------------------

  /// Queues `r` (a write request whose segments are the payload) or
  /// completes it at once with the reason it cannot be appended.
  void submit(request& r) {
    status refused;
    {
      std::lock_guard lock(mutex_);
      refused = refusal_locked(r);
      if (!refused) {
        if (!waiting_.empty() || fill_ + journal_format::record_bytes(r.size()) > buffer_bytes_) {
          waiting_.push_back(r);
          ++stats_.buffer_waits;
          return;
        }
        stage_locked(r);
        if (!flushing_ && staged_.size() == 1) flusher_cv_.notify_one();
        return;
      }
    }
    r.epoch = 0;
    r.complete(refused);
  }

  /// Removes `r` if it still waits for buffer space (a cancelled append).
  bool withdraw(request& r) {
    std::lock_guard lock(mutex_);
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
      if (&*it == &r) return waiting_.erase(it), ++stats_.withdrawn, true;
    return false;
  }

  // ---- queries -----------------------------------------------------------

  journal_stats stats() const {
    std::lock_guard lock(mutex_);
    journal_stats s = stats_;
    s.durable_lsn = durable_lsn_;
    s.next_lsn = next_lsn_;
    s.segments = live_.size();
    return s;
  }
  lsn_t durable_lsn() const {
    std::lock_guard lock(mutex_);
    return durable_lsn_;
  }
  status error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }
  const journal_recovery& recovery() const noexcept { return recovery_; }
  std::size_t max_record_bytes() const noexcept { return max_record_; }
  store_type& store() noexcept { return store_; }

  /// Schedules the deletion of every segment whose records all have an LSN
  /// below `lsn` (never the segment being written). Returns how many.
  std::size_t release(lsn_t lsn) {
    std::lock_guard lock(mutex_);
    release_below_ = std::max(release_below_, lsn);
    remove_blocked_ = false; // after a failed deletion, a new checkpoint tries again
    const std::size_t n = releasable_locked();
    if (n != 0) keeper_cv_.notify_one();
    return n;
  }

  /// Refuses new appends, waits until every queued one completed, stops the
  /// threads (the keeper finishes scheduled deletions first). Idempotent.
  void close_and_wait() {
    {
      std::unique_lock lock(mutex_);
      closing_ = true;
      idle_cv_.wait(lock, [&] { return staged_.empty() && waiting_.empty() && !flushing_; });
      stop_ = true;
    }
    flusher_cv_.notify_all();
    keeper_cv_.notify_all();
    spare_cv_.notify_all();
    std::lock_guard join_lock(join_mutex_); // a second closer waits for the first
    if (flusher_.joinable()) flusher_.join();
    if (keeper_.joinable()) keeper_.join();
  }

private:
  static status invalid() noexcept { return make_error_code(errc::invalid_request); }

  static std::size_t max_record_for(const journal_options& o, std::uint64_t segment_bytes) noexcept {
    const std::uint64_t fit = segment_bytes - seg_hdr - rec_hdr;
    const std::uint64_t limit = std::min<std::uint64_t>(fit, 0xffffffffu);
    const std::uint64_t fallback = std::min<std::uint64_t>(limit, o.buffer_bytes > rec_hdr ? o.buffer_bytes - rec_hdr : 1);
    return static_cast<std::size_t>(o.max_record_bytes == 0 ? fallback
                                                            : std::min<std::uint64_t>(o.max_record_bytes, limit));
  }

  status refusal_locked(const request& r) const noexcept {
    if (closing_) return make_error_code(errc::shutting_down);
    if (error_) return error_;
    const std::size_t n = r.size();
    if (n == 0 || n > max_record_ || r.op() != req_op::write) return invalid();
    return {};
  }

  // Frames `r` into the active buffer with the next LSN (under mutex_).
  void stage_locked(request& r) {
    std::byte* p = buffers_[active_].get() + fill_;
    const auto len = static_cast<std::uint32_t>(r.size());
    const lsn_t lsn = next_lsn_++;
    r.epoch = lsn;
    std::byte* at = p + rec_hdr;
    for (const segment& s : r.segments()) {
      std::memcpy(at, s.base, s.len);
      at += s.len;
    }
    journal_format::seal_framed(p, len, lsn);
    fill_ += journal_format::record_bytes(len);
    staged_.push_back(r);
  }

  // ---- the flusher -------------------------------------------------------

  // What writing one batch achieved.
  struct batch_result {
    status st;              ///< write or sync failure: nothing of the batch is known durable
    status rotation;        ///< no segment to rotate into: records from `first_unplaced` on were not written
    lsn_t first_unplaced = 0;
  };

  void run_flusher() {
    std::unique_lock lock(mutex_);
    for (;;) {
      flusher_cv_.wait(lock, [&] { return !staged_.empty() || stop_; });
      if (staged_.empty()) return;
      request_list batch;
      batch.splice(batch.end(), staged_);
      const std::byte* buf = buffers_[active_].get();
      const std::size_t bytes = std::exchange(fill_, 0);
      active_ ^= 1;
      while (!waiting_.empty() && fill_ + journal_format::record_bytes(waiting_.front().size()) <= buffer_bytes_) {
        request& r = waiting_.front();
        waiting_.pop_front();
        stage_locked(r);
      }
      flushing_ = true;
      lock.unlock();
      const batch_result br = write_batch(buf, bytes);
      lock.lock();
      finish_batch_locked(lock, batch, br);
    }
  }

  // Completes the batch (and, after a failure, everything queued), in LSN
  // order, without the lock.
  void finish_batch_locked(std::unique_lock<std::mutex>& lock, request_list& batch, const batch_result& br) {
    request_list acked, failed;
    const status fail_with = br.st ? br.st : br.rotation;
    if (!br.st) {
      const lsn_t acked_to = br.rotation ? br.first_unplaced - 1 : batch.back().epoch;
      while (!batch.empty() && batch.front().epoch <= acked_to) {
        request& r = batch.front();
        batch.pop_front();
        stats_.bytes += r.size();
        ++stats_.appends;
        acked.push_back(r);
      }
      if (!acked.empty()) durable_lsn_ = acked.back().epoch;
      for (live_segment& l : live_) l.synced = true; // every segment written was synced
      if (releasable_locked() != 0) keeper_cv_.notify_one();
      ++stats_.flushes;
    }
    if (fail_with) {
      if (br.st) error_ = br.st; // read-only until reopened: the page cache may have dropped what failed
      failed.splice(failed.end(), batch);
      failed.splice(failed.end(), staged_);
      failed.splice(failed.end(), waiting_);
      fill_ = 0;
      if (!br.st) next_lsn_ = br.first_unplaced; // none of them was written: their LSNs are free again
      stats_.failed_appends += failed.size();
    }
    flushing_ = false;
    const bool idle = staged_.empty() && waiting_.empty();
    lock.unlock();
    complete_all(acked, status{});
    complete_all(failed, fail_with);
    lock.lock();
    if (idle) idle_cv_.notify_all();
  }

  static void complete_all(request_list& list, const status& st) {
    while (!list.empty()) {
      request& r = list.front();
      list.pop_front();
      if (st) r.epoch = 0;
      r.complete(st);
    }
  }

  // Writes the batch's records after each other, rotating where one does
  // not fit, and syncs every segment written. Runs without the lock.
  batch_result write_batch(const std::byte* buf, std::size_t bytes) {
    batch_result br;
    bool dirty = false;
    for (std::size_t pos = 0; pos < bytes;) {
      const std::size_t run = fitting_run(buf + pos, bytes - pos);
      if (run != 0) {
        br.st = store_.write(current_, offset_, std::span<const std::byte>(buf + pos, run));
        if (br.st) return br;
        offset_ += run;
        pos += run;
        dirty = true;
      }
      if (pos == bytes) break;
      if (dirty && (br.st = store_.sync(current_))) return br;
      dirty = false;
      const lsn_t base = journal_format::decode_record_header(std::span<const std::byte, rec_hdr>(buf + pos, rec_hdr)).lsn;
      if ((br.rotation = rotate(base))) {
        br.first_unplaced = base;
        return br;
      }
      if ((br.st = write_segment_header(current_, base))) return br;
      offset_ = seg_hdr;
      dirty = true;
    }
    if (dirty) br.st = store_.sync(current_);
    return br;
  }

  // Bytes of the leading records of [p, p + n) that fit in the current segment.
  std::size_t fitting_run(const std::byte* p, std::size_t n) const noexcept {
    std::size_t run = 0;
    while (run < n) {
      const auto rh = journal_format::decode_record_header(std::span<const std::byte, rec_hdr>(p + run, rec_hdr));
      const std::size_t rb = journal_format::record_bytes(rh.length);
      if (offset_ + run + rb > segment_bytes_) break;
      run += rb;
    }
    return run;
  }

  // Moves to the next segment, a spare the keeper made (waits for it if
  // it is not ready), whose first record will be `base`.
  [[nodiscard]] status rotate(lsn_t base) {
    const std::uint64_t next = current_ + 1;
    {
      std::unique_lock lock(mutex_);
      if (created_upto_ < next) {
        ++stats_.rotation_waits;
        if (keeper_error_) { // the last attempt failed: one more try for this rotation
          keeper_error_ = {};
          keeper_cv_.notify_one();
        }
        spare_cv_.wait(lock, [&] { return created_upto_ >= next || keeper_error_ || stop_; });
        if (created_upto_ < next) return keeper_error_ ? keeper_error_ : make_error_code(errc::shutting_down);
      }
      live_.push_back({next, base, false});
      current_locked_ = next;
      ++stats_.rotations;
      keeper_cv_.notify_one(); // the next spare
    }
    current_ = next;
    offset_ = 0;
    return {};
  }

  [[nodiscard]] status write_segment_header(std::uint64_t index, lsn_t base) {
    std::array<std::byte, seg_hdr> raw{};
    journal_format::encode_segment_header({index, base, segment_bytes_}, raw);
    return store_.write(index, 0, raw);
  }

  // ---- the keeper ---------------------------------------------------------

  std::size_t releasable_locked() const noexcept {
    std::size_t n = 0;
    if (remove_blocked_) return 0;
    while (n + 1 < live_.size() && live_[n + 1].base <= release_below_ && live_[n + 1].synced &&
           live_[n].index != current_locked_)
      ++n;
    return n;
  }

  bool needs_spare_locked() const noexcept {
    return !stop_ && !keeper_error_ && created_upto_ < current_locked_ + opts_.spare_segments;
  }

  void run_keeper() {
    std::unique_lock lock(mutex_);
    for (;;) {
      keeper_cv_.wait(lock, [&] { return stop_ || releasable_locked() != 0 || needs_spare_locked(); });
      if (releasable_locked() != 0) {
        const live_segment oldest = live_.front();
        live_.erase(live_.begin());
        lock.unlock();
        const status st = store_.remove(oldest.index);
        lock.lock();
        if (st) { // the file may still be there: deleting a later one would leave a gap
          live_.insert(live_.begin(), oldest);
          remove_blocked_ = true;
          ++stats_.remove_failures;
        } else {
          ++stats_.segments_removed;
        }
      } else if (needs_spare_locked()) {
        const std::uint64_t index = created_upto_ + 1;
        lock.unlock();
        const status st = store_.create(index);
        lock.lock();
        if (st)
          keeper_error_ = st;
        else
          created_upto_ = index, ++stats_.segments_created;
        spare_cv_.notify_all();
      } else {
        return; // stop_, nothing left to delete
      }
    }
  }

  // ---- recovery -----------------------------------------------------------

  // Scans the segments from the oldest, stops at the first invalid record,
  // zeroes what follows it in that segment, and deletes later segments.
  [[nodiscard]] status recover() {
    std::vector<std::uint64_t> indices;
    if (status st = store_.list(indices)) return st;
    for (std::size_t i = 1; i < indices.size(); ++i)
      if (indices[i] != indices[i - 1] + 1) return make_error_code(errc::io_error); // a hole: not ours to repair
    scanner_type scan(store_);
    std::size_t kept = 0;
    lsn_t expected = 0;
    std::uint64_t end_offset = 0;
    for (; kept < indices.size(); ++kept) {
      std::optional<journal_format::segment_header> h;
      if (status st = scan.open(indices[kept], h)) return st;
      if (!h || (expected != 0 && h->base_lsn != expected)) break;
      if (kept == 0) recovery_.first_lsn = h->base_lsn;
      live_.push_back({indices[kept], h->base_lsn, true});
      scanned_record rec;
      for (bool found = true; found;) {
        if (status st = scan.next(rec, found)) return st;
        recovery_.records += found ? 1 : 0;
      }
      expected = scan.next_lsn();
      end_offset = scan.offset();
    }
    if (kept == 0) return start_empty(indices);
    current_ = current_locked_ = created_upto_ = indices[kept - 1];
    // What recovery read may be in the page cache only (the appender was
    // killed before its sync): make it durable before building on it, or a
    // power cut could later open a hole below acknowledged records.
    for (std::size_t i = 0; i < kept; ++i)
      if (status st = store_.sync(indices[i])) return st;
    std::size_t spares = 0;
    for (std::size_t i = kept; i < indices.size(); ++i) {
      std::uint64_t nonzero = 0;
      if (status st = zero_range(indices[i], 0, /*write=*/false, nonzero)) return st;
      if (nonzero != 0 || spares != i - kept) break;
      ++spares; // all zero, right after the log: a spare as the keeper made it
    }
    created_upto_ += spares;
    // Delete the rest from the highest index down, so that a power cut
    // between two deletions never leaves a gap in the numbers.
    for (std::size_t i = indices.size(); i > kept + spares; --i) {
      if (status st = store_.remove(indices[i - 1])) return st;
      ++recovery_.segments_discarded;
    }
    offset_ = end_offset;
    next_lsn_ = expected;
    durable_lsn_ = expected - 1;
    recovery_.last_lsn = recovery_.records == 0 ? 0 : expected - 1;
    if (recovery_.records == 0) recovery_.first_lsn = 0;
    recovery_.next_lsn = expected;
    recovery_.segments = kept;
    return zero_tail(current_, end_offset);
  }

  // No valid segment: a new journal (refused if a segment holds anything).
  [[nodiscard]] status start_empty(const std::vector<std::uint64_t>& indices) {
    for (const std::uint64_t i : indices) {
      std::uint64_t nonzero = 0;
      if (status st = zero_range(i, 0, /*write=*/false, nonzero)) return st;
      if (nonzero != 0) return make_error_code(errc::io_error); // not a journal we wrote
      if (status st = store_.remove(i)) return st;
    }
    const std::uint64_t first = indices.empty() ? 0 : indices.front();
    if (status st = store_.create(first)) return st;
    if (status st = write_segment_header(first, opts_.first_lsn)) return st;
    if (status st = store_.sync(first)) return st;
    live_.push_back({first, opts_.first_lsn, true});
    current_ = current_locked_ = created_upto_ = first;
    offset_ = seg_hdr;
    next_lsn_ = opts_.first_lsn;
    durable_lsn_ = opts_.first_lsn - 1;
    recovery_.created = true;
    recovery_.next_lsn = next_lsn_;
    recovery_.segments = 1;
    return {};
  }

  // Zeroes the torn tail [from, end) of segment `index` where it is not
  // zero already, and syncs it.
  [[nodiscard]] status zero_tail(std::uint64_t index, std::uint64_t from) {
    std::uint64_t zeroed = 0;
    if (status st = zero_range(index, from, /*write=*/true, zeroed)) return st;
    recovery_.tail_bytes_zeroed = zeroed;
    return zeroed != 0 ? store_.sync(index) : status{};
  }

  // Walks [from, end) of a segment in chunks; counts the bytes of chunks
  // that are not all zero in `nonzero`, and overwrites them with zeros
  // when `write`.
  [[nodiscard]] status zero_range(std::uint64_t index, std::uint64_t from, bool write, std::uint64_t& nonzero) {
    constexpr std::size_t chunk = 64 * 1024;
    std::vector<std::byte> buf(chunk);
    static const std::vector<std::byte> zeros(chunk);
    for (std::uint64_t at = from; at < segment_bytes_;) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, segment_bytes_ - at));
      if (status st = store_.read(index, at, std::span<std::byte>(buf.data(), n))) return st;
      if (std::memcmp(buf.data(), zeros.data(), n) != 0) {
        nonzero += n;
        if (write) {
          if (status st = store_.write(index, at, std::span<const std::byte>(zeros.data(), n))) return st;
        }
      }
      at += n;
    }
    return {};
  }

  Store store_;
  const journal_options opts_;
  const std::uint64_t segment_bytes_;
  const std::size_t max_record_;
  const std::size_t buffer_bytes_;
  journal_recovery recovery_;

  mutable std::mutex mutex_;
  std::condition_variable flusher_cv_, keeper_cv_, spare_cv_, idle_cv_;
  // Under mutex_:
  std::unique_ptr<std::byte[]> buffers_[2];
  int active_ = 0;
  std::size_t fill_ = 0;
  request_list staged_, waiting_;
  lsn_t next_lsn_ = 1, durable_lsn_ = 0, release_below_ = 0;
  bool flushing_ = false, closing_ = false, stop_ = false, remove_blocked_ = false;
  status error_, keeper_error_;
  std::vector<live_segment> live_;
  std::uint64_t created_upto_ = 0, current_locked_ = 0;
  journal_stats stats_;
  // The flusher's own (and recovery's, before the threads start):
  std::uint64_t current_ = 0, offset_ = 0;

  std::mutex join_mutex_;
  std::thread flusher_, keeper_;
};

} // namespace flushkit::journal_detail
