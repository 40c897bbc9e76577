// bench/histogram.hpp - a fixed-size, lock-free log-linear latency histogram.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace flushkit::bench {

/// Counts values (nanoseconds) in buckets of 1/16 of a power of two (about
/// 6 % relative width). `record` is wait-free and never allocates, so it can
/// run on any thread inside the measured window.
class histogram {
public:
  void record(std::uint64_t v) noexcept { counts_[index(v)].fetch_add(1, std::memory_order_relaxed); }

  void reset() noexcept {
    for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
  }

  std::uint64_t count() const noexcept {
    std::uint64_t n = 0;
    for (const auto& c : counts_) n += c.load(std::memory_order_relaxed);
    return n;
  }

  /// The value below which a fraction `q` (0..1) of the samples lie, as the
  /// midpoint of its bucket; 0 without samples.
  double quantile(double q) const noexcept {
    const std::uint64_t total = count();
    if (total == 0) return 0.0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets; ++i) {
      seen += counts_[i].load(std::memory_order_relaxed);
      if (seen >= rank) return midpoint(i);
    }
    return midpoint(buckets - 1);
  }

private:
  static constexpr unsigned sub_bits = 4;
  static constexpr std::size_t sub = std::size_t{1} << sub_bits;
  static constexpr std::size_t buckets = sub + (64 - sub_bits) * sub;

  static std::size_t index(std::uint64_t v) noexcept {
    if (v < sub) return static_cast<std::size_t>(v);
    const auto e = static_cast<unsigned>(std::bit_width(v) - 1); // >= sub_bits
    const auto frac = static_cast<std::size_t>((v >> (e - sub_bits)) & (sub - 1));
    return sub + (e - sub_bits) * sub + frac;
  }

  static double midpoint(std::size_t i) noexcept {
    if (i < sub) return static_cast<double>(i);
    const std::size_t e = (i - sub) / sub + sub_bits, frac = (i - sub) % sub;
    const double width = static_cast<double>(std::uint64_t{1} << (e - sub_bits));
    return static_cast<double>(sub + frac) * width + width / 2.0;
  }

  std::array<std::atomic<std::uint64_t>, buckets> counts_{};
};

} // namespace flushkit::bench
