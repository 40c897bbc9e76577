// demo/run_state.hpp - what a phase's writers share: counters, the latency histogram, the ledgers of acknowledged
// writes (4 KiB blocks for the virtio phases, LSNs for the storage-engine phases), the payload pattern.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/journal/record.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace flushkit::demo {

using clock_type = std::chrono::steady_clock;

inline constexpr std::size_t block_bytes = 4096;
inline constexpr std::uint64_t blocks_per_writer = 16; // writer w owns blocks [16w, 16w + 16)
/// The header `fill_pattern` puts first: writer and sequence number, 8 bytes each.
inline constexpr std::size_t pattern_header_bytes = 16;

/// Effects: fills `out` with the pattern of write (or append) `seq` of writer
/// `writer`: a header naming both (`pattern_header_bytes`, truncated when
/// `out` is shorter), then a xorshift stream seeded by both, so the bytes
/// identify the pair exactly. No allocation.
inline void fill_pattern(std::span<std::byte> out, std::uint32_t writer, std::uint64_t seq) noexcept {
  std::uint64_t x = (std::uint64_t{writer} << 40) ^ (seq * 0x9E3779B97F4A7C15ull) ^ 0xF1A5ull;
  const std::uint64_t header[2] = {std::uint64_t{writer}, seq};
  const std::size_t head = std::min(out.size(), sizeof header);
  std::memcpy(out.data(), header, head);
  for (std::size_t off = head; off < out.size(); off += sizeof x) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + off, &x, std::min(sizeof x, out.size() - off));
  }
}

/// Fixed-size log-linear histogram of nanoseconds (16 sub-buckets per power
/// of two: <= 6.25 % error). Not thread-safe; no allocation.
class latency_histogram {
public:
  /// Effects: counts one sample of `ns` nanoseconds.
  void add(std::uint64_t ns) noexcept {
    ++counts_[index(ns)];
    ++total_;
  }
  /// Returns: the number of samples.
  std::uint64_t count() const noexcept { return total_; }
  /// Returns: the value below which a fraction `q` of the samples lie (bucket midpoint); 0 without samples.
  std::uint64_t percentile(double q) const noexcept {
    const auto want = static_cast<std::uint64_t>(q * static_cast<double>(total_));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i)
      if ((seen += counts_[i]) > want) return midpoint(i);
    return 0;
  }

private:
  static constexpr std::size_t sub = 16;
  static std::size_t index(std::uint64_t ns) noexcept {
    if (ns < sub) return static_cast<std::size_t>(ns);
    const int msb = 63 - std::countl_zero(ns); // >= 4
    const auto shift = static_cast<unsigned>(msb - 4);
    return static_cast<std::size_t>(msb - 3) * sub + static_cast<std::size_t>((ns >> shift) & (sub - 1));
  }
  static std::uint64_t midpoint(std::size_t i) noexcept {
    if (i < sub) return i;
    const auto shift = static_cast<unsigned>(i / sub - 1);
    const std::uint64_t low = (sub + i % sub) << shift;
    return low + ((std::uint64_t{1} << shift) >> 1);
  }
  std::array<std::uint64_t, 61 * sub> counts_{};
  std::uint64_t total_ = 0;
};

/// What every phase counts. The atomics are shared by the phase's writers
/// (all on one event-loop thread) and the progress line (another thread);
/// the rest belongs to the event-loop thread and is read after it stopped.
struct phase_counters {
  std::atomic<bool> stop{false};                 ///< set when the phase's time is up: no new submission
  std::atomic<std::uint64_t> submitted{0};       ///< writes (appends) started
  std::atomic<std::uint64_t> completed{0};       ///< writes completed, with success or not
  std::atomic<std::uint64_t> failed{0};          ///< writes completed with an error
  std::atomic<std::uint64_t> aborted{0};         ///< writers that ended with an exception
  latency_histogram latency;                     ///< submit -> completion, every completed write
  clock_type::time_point last_completion{};      ///< when the latest completion was recorded
  status first_error;                            ///< the error of the first failed write

  /// Effects: records one completion (`submitted_at` .. `now`) with status
  /// `st`. Thread-safety: the event-loop thread only. No allocation.
  void complete(const status& st, clock_type::time_point submitted_at, clock_type::time_point now) noexcept {
    latency.add(static_cast<std::uint64_t>(std::chrono::nanoseconds(now - submitted_at).count()));
    last_completion = now;
    // completed before failed, both sequentially consistent: a reader that loads failed, then completed,
    // then submitted never sees more failures than completions, nor more completions than submissions.
    completed.fetch_add(1);
    if (st) {
      if (!first_error) first_error = st;
      failed.fetch_add(1);
    }
  }
};

/// A virtio phase's state: the counters and the ledger of each block's latest acknowledged write.
struct run_state {
  /// Effects: a ledger for `writers` writers of `blocks_per_writer` blocks each, none written.
  explicit run_state(unsigned writers) : latest(writers * blocks_per_writer, 0) {}

  /// Returns: the block write `seq` of writer `writer` goes to.
  static std::uint64_t block_of(std::uint32_t writer, std::uint64_t seq) noexcept {
    return writer * blocks_per_writer + seq % blocks_per_writer;
  }
  /// Returns: the number of blocks.
  std::uint64_t blocks() const noexcept { return latest.size(); }

  /// Effects: a write finished: its latency, and on success the ledger entry
  /// of its block (a failed write makes the block's content unknown).
  /// Thread-safety: the event-loop thread only.
  void record(std::uint32_t writer, std::uint64_t seq, const status& st, clock_type::time_point submitted_at,
              clock_type::time_point now) noexcept {
    const std::uint64_t b = block_of(writer, seq);
    if (st)
      latest[b] = unknown;
    else if (latest[b] != unknown)
      latest[b] = seq + 1;
    counters.complete(st, submitted_at, now);
  }

  /// A `latest` entry whose block's content is unknown.
  static constexpr std::uint64_t unknown = ~std::uint64_t{0};

  phase_counters counters;
  std::vector<std::uint64_t> latest; ///< per block: 1 + seq of its latest acknowledged write; 0 none
};

/// A storage-engine phase's state: the counters and, per appender, the LSN
/// each of its acknowledged appends got (index: the append's sequence number).
struct append_ledger {
  /// Effects: an empty ledger for `appenders` appenders.
  explicit append_ledger(unsigned appenders) : acked(appenders) {}

  /// Effects: append `seq` of appender `a` finished: its latency, and on
  /// success its LSN. An appender stops at its first failure, so `seq` is
  /// the number of its earlier acknowledged appends. Thread-safety: the
  /// event-loop thread only. Allocation: the ledger grows (amortised).
  void record(std::uint32_t a, std::uint64_t seq, const status& st, lsn_t lsn, clock_type::time_point submitted_at,
              clock_type::time_point now) {
    if (!st) {
      if (seq != acked[a].size()) out_of_order = true;
      acked[a].push_back(lsn);
    }
    counters.complete(st, submitted_at, now);
  }

  phase_counters counters;
  std::vector<std::vector<lsn_t>> acked; ///< acked[a][seq]: the LSN of append `seq` of appender `a`
  bool out_of_order = false;            ///< an acknowledgement did not match its appender's sequence (a bug)
};

} // namespace flushkit::demo
