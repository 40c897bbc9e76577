// flushkit/pmem/cacheline_provider.hpp - flush = write back the dirty cache lines + one fence.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/pmem/detail/cpu_flush.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace flushkit::pmem {

/// Synchronous provider for memory that is persistent once it leaves the CPU
/// cache (a MAP_SYNC mapping on DAX, real pmem).
///
/// The device reports every range its data step wrote with `note_dirty`; the
/// provider keeps them in a bounded set of at most `MaxRanges` line ranges
/// (neighbours merge; when the set is full the new range is merged into the
/// nearest one, which only widens what the next flush writes back). No
/// allocation, ever. `flush()` writes back exactly the lines in the set with
/// CLWB, else CLFLUSHOPT, else CLFLUSH (chosen at run time through CPUID),
/// then issues one SFENCE, and empties the set. On other architectures it
/// issues a seq_cst fence only.
///
/// Durability contract: when `flush()` returns success, every byte reported
/// through `note_dirty` before the call has left the CPU cache and reached the
/// memory controller's persistence domain (ADR). It makes nothing durable on a
/// page-cache mapping; use `file_sync_provider` there. Always succeeds.
///
/// Thread-safety: `note_dirty` and `flush` may be called concurrently; flushes
/// are serialised so a flush never returns while lines noted before it are
/// still being written back by another flush.
template <std::size_t MaxRanges = 16> class cacheline_provider {
  static_assert(MaxRanges >= 1);

public:
  cacheline_provider() noexcept : insn_(detail::detect_flush_instruction()) {}
  /// Uses `insn`. Precondition: `detail::cpu_supports(insn)`.
  explicit cacheline_provider(flush_instruction insn) noexcept : insn_(insn) {}
  cacheline_provider(const cacheline_provider&) = delete;
  cacheline_provider& operator=(const cacheline_provider&) = delete;

  /// Records that [p, p + len) was written. Never allocates.
  void note_dirty(const void* p, std::size_t len) noexcept {
    if (len == 0) return;
    const auto addr = reinterpret_cast<std::uintptr_t>(p);
    std::lock_guard lk(mu_);
    add(addr / line, (addr + len - 1) / line + 1);
  }

  /// Writes back every dirty line, then one fence. Returns success.
  status flush() noexcept {
    std::lock_guard lk(mu_);
    std::uint64_t lines = 0;
    for (std::size_t i = 0; i < count_; ++i)
      for (std::uintptr_t l = ranges_[i].lo; l < ranges_[i].hi; ++l, ++lines)
        detail::write_back_line(insn_, reinterpret_cast<const void*>(l * line));
    count_ = 0;
    detail::write_back_fence();
    lines_.fetch_add(lines, std::memory_order_relaxed);
    flushes_.fetch_add(1, std::memory_order_relaxed);
    return {};
  }

  /// The write-back instruction chosen at construction.
  flush_instruction instruction() const noexcept { return insn_; }
  /// Lines written back so far, over all flushes.
  std::uint64_t lines_written_back() const noexcept { return lines_.load(std::memory_order_relaxed); }
  /// Calls of `flush()` so far.
  std::uint64_t flushes() const noexcept { return flushes_.load(std::memory_order_relaxed); }
  /// Number of ranges currently tracked (at most MaxRanges).
  std::size_t dirty_ranges() const noexcept {
    std::lock_guard lk(mu_);
    return count_;
  }

private:
  static constexpr std::uintptr_t line = detail::cache_line_size;
  struct range {
    std::uintptr_t lo, hi; // line numbers, [lo, hi)
  };

  void add(std::uintptr_t lo, std::uintptr_t hi) noexcept {
    for (std::size_t i = 0; i < count_;) {
      if (ranges_[i].lo <= hi && lo <= ranges_[i].hi) { // overlapping or adjacent: absorb it
        lo = std::min(lo, ranges_[i].lo);
        hi = std::max(hi, ranges_[i].hi);
        ranges_[i] = ranges_[--count_];
        i = 0;
      } else {
        ++i;
      }
    }
    if (count_ == MaxRanges) { // full: widen into the nearest range
      const std::size_t n = nearest(lo, hi);
      const range r = ranges_[n];
      ranges_[n] = ranges_[--count_];
      add(std::min(lo, r.lo), std::max(hi, r.hi));
      return;
    }
    ranges_[count_++] = {lo, hi};
  }

  std::size_t nearest(std::uintptr_t lo, std::uintptr_t hi) const noexcept {
    std::size_t best = 0;
    std::uintptr_t best_gap = ~std::uintptr_t{0};
    for (std::size_t i = 0; i < count_; ++i) {
      const std::uintptr_t gap = ranges_[i].lo >= hi ? ranges_[i].lo - hi : lo - ranges_[i].hi;
      if (gap < best_gap) {
        best_gap = gap;
        best = i;
      }
    }
    return best;
  }

  const flush_instruction insn_;
  mutable std::mutex mu_;
  std::array<range, MaxRanges> ranges_{};
  std::size_t count_ = 0;
  std::atomic<std::uint64_t> lines_{0};
  std::atomic<std::uint64_t> flushes_{0};
};

} // namespace flushkit::pmem
