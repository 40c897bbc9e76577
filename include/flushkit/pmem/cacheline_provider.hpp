// flushkit/pmem/cacheline_provider.hpp - flush = write back the dirty cache lines + one fence.
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/pmem/detail/cpu_flush.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <utility>

namespace flushkit::pmem {

/// What `cacheline_provider` writes back with: `write_back(first_byte, len)`
/// writes back every cache line overlapping [first_byte, first_byte + len)
/// (the provider passes line-aligned ranges); `fence()` orders the calling
/// thread's earlier write-backs before its later stores and makes them
/// durable; `usable()` and `durability()` are the capabilities of
/// `core/capabilities.hpp`. Every member is noexcept and may be called from
/// several threads at once.
template <class W>
concept line_writer = reports_usability<W> && declares_durability<W> &&
                      requires(W& w, const void* first_byte, std::size_t len) {
                        { w.write_back(first_byte, len) } noexcept;
                        { w.fence() } noexcept;
                      };

/// The CPU's line writer: CLWB, else CLFLUSHOPT, else CLFLUSH (chosen at run
/// time through CPUID), and SFENCE.
///
/// Errors: `usable()` is `not_supported` when the instruction is fence_only
/// (the CPU has no write-back instruction: every non-x86-64 build) or the CPU
/// does not execute it; `durability()` is then `none`, otherwise `cpu_cache`.
/// Thread-safety: immutable after construction. Allocation: none.
class cpu_line_writer {
public:
  /// The best instruction this CPU has (`detail::detect_flush_instruction`).
  cpu_line_writer() noexcept : cpu_line_writer(detail::detect_flush_instruction()) {}
  /// Uses `insn` (not usable unless `detail::cpu_supports(insn)`).
  explicit cpu_line_writer(flush_instruction insn) noexcept
      : insn_(insn), usable_(insn != flush_instruction::fence_only && detail::cpu_supports(insn)) {}

  /// Writes back every line overlapping [first_byte, first_byte + len); nothing when not usable.
  void write_back(const void* first_byte, std::size_t len) noexcept {
    if (!usable_) return;
    constexpr std::uintptr_t line = detail::cache_line_size;
    const auto first = reinterpret_cast<std::uintptr_t>(first_byte);
    for (std::uintptr_t a = first - first % line; a < first + len; a += line)
      detail::write_back_line(insn_, reinterpret_cast<const void*>(a));
  }
  /// `detail::write_back_fence()`.
  void fence() noexcept { detail::write_back_fence(); }
  /// Success, or `not_supported` when this CPU cannot write back a line with the instruction.
  status usable() const noexcept { return usable_ ? status{} : make_error_code(errc::not_supported); }
  /// `cpu_cache` when usable, else `none`.
  durability_scope durability() const noexcept {
    return usable_ ? durability_scope::cpu_cache : durability_scope::none;
  }
  /// The write-back instruction.
  flush_instruction instruction() const noexcept { return insn_; }

private:
  flush_instruction insn_;
  bool usable_;
};

/// Synchronous, `dirty_tracking` provider for memory that is persistent once
/// it leaves the CPU cache (a MAP_SYNC mapping on DAX, real pmem).
///
/// Effects: the device reports every range its data step wrote with
/// `note_dirty`; the provider keeps at most `MaxRanges` disjoint line ranges
/// (a range that overlaps or touches tracked ones merges with them). A range
/// is never widened into lines that were not noted: when the set is full and
/// the new range merges with none, `note_dirty` writes it back and fences at
/// once, on the calling thread. `flush()` writes back exactly the tracked
/// lines through `LineWriter` (`cpu_line_writer`: CLWB / CLFLUSHOPT /
/// CLFLUSH, then SFENCE), then one fence, and empties the set.
///
/// Durability contract: when `flush()` returns success, every byte of every
/// `note_dirty` call that returned before `flush()` was called is durable in
/// the writer's scope (`cpu_cache`: out of the CPU cache, in the memory
/// controller's persistence domain, ADR). That makes nothing durable on a
/// page-cache mapping (`durability()` says so; use `file_sync_provider`).
///
/// Errors: when the writer is not usable (`cpu_line_writer` on a CPU with no
/// write-back instruction: `not_supported`), `usable()` says so, `note_dirty`
/// tracks nothing and `flush()` returns that status without writing back;
/// `flush()` never returns success while nothing was written back.
///
/// Thread-safety: every member may be called concurrently. `note_dirty` holds
/// the range lock for one O(MaxRanges) pass and never waits for a flush; its
/// write-back of a range that does not fit runs after releasing it. `flush()`
/// holds the range lock only to take the tracked ranges (O(MaxRanges)) and
/// writes them back outside it; a separate flush mutex serialises flushes, so
/// a flush waits for an earlier flush still writing back and never returns
/// while lines noted before it are being written back by another. The writer
/// is called from the noting and the flushing threads at once.
///
/// Allocation: none, ever.
template <std::size_t MaxRanges = 16, class LineWriter = cpu_line_writer> class cacheline_provider {
  static_assert(MaxRanges >= 1);
  static_assert(line_writer<LineWriter>, "cacheline_provider: LineWriter must satisfy pmem::line_writer");

public:
  /// A provider whose writer is `LineWriter(args...)`: `cacheline_provider<>()`
  /// uses the best instruction of this CPU, `cacheline_provider<>(insn)` uses
  /// `insn`, `cacheline_provider<N, W>(w)` a given writer.
  template <class... Args>
    requires std::constructible_from<LineWriter, Args...>
  explicit cacheline_provider(Args&&... args) noexcept(std::is_nothrow_constructible_v<LineWriter, Args...>)
      : writer_(std::forward<Args>(args)...) {}
  cacheline_provider(const cacheline_provider&) = delete;
  cacheline_provider& operator=(const cacheline_provider&) = delete;

  /// Records that [p, p + len) was written (nothing when len is 0 or the
  /// writer is not usable). When the set is full and the range merges with
  /// none, writes it back and fences before returning (`overflow_write_backs`).
  void note_dirty(const void* p, std::size_t len) noexcept {
    if (len == 0 || writer_.usable()) return;
    const auto addr = reinterpret_cast<std::uintptr_t>(p);
    const range r{addr / line, (addr + len - 1) / line + 1};
    {
      std::lock_guard lk(ranges_mu_);
      if (insert_locked(r)) return;
    }
    write_back(r);
    writer_.fence();
    overflows_.fetch_add(1, std::memory_order_relaxed);
  }

  /// Writes back every tracked line, then one fence.
  /// Returns: the writer's `usable()` status (before: nothing is written back
  /// when it is an error; after the fence: a model writer may report a failed fence).
  [[nodiscard]] status flush() noexcept {
    if (status st = writer_.usable()) return st;
    std::lock_guard serial(flush_mu_);
    std::array<range, MaxRanges> taken{};
    std::size_t n = 0;
    {
      std::lock_guard lk(ranges_mu_);
      n = std::exchange(count_, 0);
      std::copy_n(ranges_.begin(), n, taken.begin());
    }
    for (std::size_t i = 0; i < n; ++i) write_back(taken[i]);
    writer_.fence();
    flushes_.fetch_add(1, std::memory_order_relaxed);
    return writer_.usable();
  }

  /// The writer's status: success when flushes can make data durable.
  status usable() const noexcept { return writer_.usable(); }
  /// The writer's scope (`cpu_line_writer`: `cpu_cache`, or `none` when not usable).
  durability_scope durability() const noexcept { return writer_.durability(); }

  /// The line writer.
  LineWriter& writer() noexcept { return writer_; }
  /// The line writer.
  const LineWriter& writer() const noexcept { return writer_; }
  /// The write-back instruction (writers that have one, as `cpu_line_writer`).
  flush_instruction instruction() const noexcept
    requires requires(const LineWriter& w) { w.instruction(); }
  {
    return writer_.instruction();
  }
  /// Lines written back so far, by flushes and by full-set write-backs.
  std::uint64_t lines_written_back() const noexcept { return lines_.load(std::memory_order_relaxed); }
  /// Flushes that wrote back and fenced (not the ones refused as not usable).
  std::uint64_t flushes() const noexcept { return flushes_.load(std::memory_order_relaxed); }
  /// `note_dirty` calls that wrote their range back at once because the set was full.
  std::uint64_t overflow_write_backs() const noexcept { return overflows_.load(std::memory_order_relaxed); }
  /// Number of ranges currently tracked (at most MaxRanges).
  std::size_t dirty_ranges() const noexcept {
    std::lock_guard lk(ranges_mu_);
    return count_;
  }

private:
  static constexpr std::uintptr_t line = detail::cache_line_size;
  struct range {
    std::uintptr_t lo, hi; // line numbers, [lo, hi)
  };

  // One pass: the tracked ranges are disjoint and never touch, so a range
  // absorbed into `r` cannot make `r` touch one already passed over.
  // Returns false (and changes nothing) when `r` touches none and the set is full.
  bool insert_locked(range r) noexcept {
    for (std::size_t i = 0; i < count_;) {
      if (ranges_[i].lo <= r.hi && r.lo <= ranges_[i].hi) {
        r = {std::min(r.lo, ranges_[i].lo), std::max(r.hi, ranges_[i].hi)};
        ranges_[i] = ranges_[--count_];
      } else {
        ++i;
      }
    }
    if (count_ == MaxRanges) return false;
    ranges_[count_++] = r;
    return true;
  }

  void write_back(range r) noexcept {
    writer_.write_back(reinterpret_cast<const void*>(r.lo * line), (r.hi - r.lo) * line);
    lines_.fetch_add(r.hi - r.lo, std::memory_order_relaxed);
  }

  LineWriter writer_;
  mutable std::mutex ranges_mu_; // guards ranges_, count_
  std::mutex flush_mu_;          // serialises flush()
  std::array<range, MaxRanges> ranges_{};
  std::size_t count_ = 0;
  std::atomic<std::uint64_t> lines_{0};
  std::atomic<std::uint64_t> flushes_{0};
  std::atomic<std::uint64_t> overflows_{0};
};

} // namespace flushkit::pmem
