// demo/run_state.hpp - what the demo's writers share: counters, the latency histogram, the ledger of acknowledged writes.
#pragma once

#include <flushkit/core/status.hpp>

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

inline constexpr std::size_t block_bytes = 4096;
inline constexpr std::uint64_t blocks_per_writer = 16; // writer w owns blocks [16w, 16w + 16)

/// Fills `block` with the pattern of write `seq` of writer `writer`: a
/// header naming both, then a xorshift stream seeded by both (unique per pair).
inline void fill_pattern(std::span<std::byte, block_bytes> block, std::uint32_t writer, std::uint64_t seq) noexcept {
  std::uint64_t x = (std::uint64_t{writer} << 40) ^ (seq * 0x9E3779B97F4A7C15ull) ^ 0xF1A5ull;
  const std::uint64_t header[2] = {std::uint64_t{writer}, seq};
  std::memcpy(block.data(), header, sizeof header);
  for (std::size_t off = sizeof header; off < block_bytes; off += sizeof x) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(block.data() + off, &x, sizeof x);
  }
}

/// Fixed-size log-linear histogram of nanoseconds (16 sub-buckets per power
/// of two: <= 6.25 % error). Not thread-safe; no allocation.
class latency_histogram {
public:
  void add(std::uint64_t ns) noexcept {
    ++counts_[index(ns)];
    ++total_;
  }
  std::uint64_t count() const noexcept { return total_; }
  /// The value below which a fraction `q` of the samples lie (bucket midpoint).
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

/// Shared by the writers (which all run on one event-loop thread) and the
/// progress line (another thread: only the atomics).
struct run_state {
  explicit run_state(unsigned writers) : latest(writers * blocks_per_writer, 0) {}

  static std::uint64_t block_of(std::uint32_t writer, std::uint64_t seq) noexcept {
    return writer * blocks_per_writer + seq % blocks_per_writer;
  }
  std::uint64_t blocks() const noexcept { return latest.size(); }

  /// A write finished: latency, and on success the ledger entry of its block.
  void record(std::uint32_t writer, std::uint64_t seq, const status& st, std::chrono::nanoseconds took) noexcept {
    latency.add(static_cast<std::uint64_t>(took.count()));
    const std::uint64_t b = block_of(writer, seq);
    if (st) {
      latest[b] = unknown; // the block's content is no longer known
      errors.fetch_add(1, std::memory_order_relaxed);
    } else if (latest[b] != unknown) {
      latest[b] = seq + 1;
    }
    completed.fetch_add(1, std::memory_order_relaxed);
  }

  static constexpr std::uint64_t unknown = ~std::uint64_t{0};

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> submitted{0}, completed{0}, errors{0};
  latency_histogram latency;
  std::vector<std::uint64_t> latest; ///< per block: 1 + seq of its latest acknowledged write; 0 none
};

} // namespace flushkit::demo
