// flushkit/pmem/badblocks.hpp - a fixed-capacity set of poisoned 512-byte sectors.
#pragma once

#include <flushkit/core/status.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace flushkit::pmem {

/// Known-bad (poisoned) sectors of a medium, in 512-byte sectors, as sorted,
/// disjoint, non-adjacent ranges (the kernel's `struct badblocks`).
///
/// Capacity (number of ranges) is fixed at construction, the only
/// allocation; `add`, `overlaps` and `clear` never allocate. Thread-safe
/// (one mutex). `clear` that removes anything bumps `notifications()` and
/// calls the notify callback (the sysfs `badblocks` notification).
class badblocks {
public:
  /// Bytes per sector: every range is in these units.
  static constexpr std::size_t sector_size = 512;
  /// Called after `clear` removed sectors: `first_sector` and `sectors` are the range passed to `clear`.
  using notify_fn = void (*)(void* context, std::uint64_t first_sector, std::uint64_t sectors);

  /// An empty set that can hold `capacity` disjoint ranges. Allocates the range array (the only allocation).
  explicit badblocks(std::size_t capacity = 64) : ranges_(std::make_unique<range[]>(capacity)), capacity_(capacity) {}
  badblocks(const badblocks&) = delete;
  badblocks& operator=(const badblocks&) = delete;

  /// Marks [first, first + count) bad, merging with neighbours.
  /// Errors: `no_space` when the set is full (nothing changed); `invalid_request` for count 0
  /// or a range that wraps.
  [[nodiscard]] status add(std::uint64_t first, std::uint64_t count) noexcept {
    if (count == 0 || first + count < first) return make_error_code(errc::invalid_request);
    std::lock_guard lk(mu_);
    range r{first, first + count};
    std::size_t i = lower(r.lo);
    std::size_t j = i;
    while (j < count_ && ranges_[j].lo <= r.hi) r.hi = std::max(r.hi, ranges_[j++].hi);
    if (i > 0 && ranges_[i - 1].hi >= r.lo) {
      --i;
      r.lo = ranges_[i].lo;
      r.hi = std::max(r.hi, ranges_[i].hi);
    }
    if (i == j && count_ == capacity_) return make_error_code(errc::no_space);
    replace(i, j, &r, 1);
    return {};
  }

  /// True when any sector of [first, first + count) is bad (`is_bad_pmem`).
  bool overlaps(std::uint64_t first, std::uint64_t count) const noexcept {
    std::lock_guard lk(mu_);
    if (count_ == 0) return false;
    const std::size_t i = lower(first);
    if (i > 0 && ranges_[i - 1].hi > first) return true;
    return i < count_ && ranges_[i].lo < first + count;
  }

  /// Removes [first, first + count) from the set; a range cut in the middle
  /// splits in two. Fires the notification when anything was removed.
  /// Errors: `no_space` when a split needs a slot and the set is full (nothing changed).
  [[nodiscard]] status clear(std::uint64_t first, std::uint64_t count) noexcept {
    if (count == 0) return {};
    bool removed = false;
    {
      std::lock_guard lk(mu_);
      const std::uint64_t end = first + count;
      std::size_t i = lower(first);
      if (i > 0 && ranges_[i - 1].hi > first) --i;
      std::size_t j = i;
      while (j < count_ && ranges_[j].lo < end) ++j;
      range keep[2];
      std::size_t kept = 0;
      if (i < j && ranges_[i].lo < first) keep[kept++] = {ranges_[i].lo, first};
      if (i < j && ranges_[j - 1].hi > end) keep[kept++] = {end, ranges_[j - 1].hi};
      if (count_ - (j - i) + kept > capacity_) return make_error_code(errc::no_space);
      removed = i < j;
      replace(i, j, keep, kept);
    }
    if (removed) notify(first, count);
    return {};
  }

  /// Number of disjoint bad ranges.
  std::size_t size() const noexcept {
    std::lock_guard lk(mu_);
    return count_;
  }
  /// True when no sector is known bad.
  bool empty() const noexcept { return size() == 0; }
  /// Most ranges the set can hold.
  std::size_t capacity() const noexcept { return capacity_; }

  /// Total number of bad sectors.
  std::uint64_t bad_sectors() const noexcept {
    std::lock_guard lk(mu_);
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < count_; ++i) n += ranges_[i].hi - ranges_[i].lo;
    return n;
  }

  /// Installs the callback run (outside the lock) after a `clear` removed sectors.
  void set_notify(notify_fn fn, void* context) noexcept {
    std::lock_guard lk(mu_);
    notify_fn_ = fn;
    notify_context_ = context;
  }
  /// How many `clear` calls removed something.
  std::uint64_t notifications() const noexcept { return notifications_.load(std::memory_order_relaxed); }

private:
  struct range {
    std::uint64_t lo = 0, hi = 0; // [lo, hi)
  };

  // First range whose lo >= sector.
  std::size_t lower(std::uint64_t sector) const noexcept {
    return static_cast<std::size_t>(
        std::partition_point(ranges_.get(), ranges_.get() + count_, [&](const range& r) { return r.lo < sector; }) -
        ranges_.get());
  }

  // Replaces ranges [i, j) with `n` new ones. Capacity checked by the caller.
  void replace(std::size_t i, std::size_t j, const range* with, std::size_t n) noexcept {
    range* base = ranges_.get();
    const std::size_t new_count = count_ - (j - i) + n;
    if (n > j - i)
      std::copy_backward(base + j, base + count_, base + new_count);
    else if (n < j - i)
      std::copy(base + j, base + count_, base + i + n);
    std::copy(with, with + n, base + i);
    count_ = new_count;
  }

  void notify(std::uint64_t first, std::uint64_t count) noexcept {
    notifications_.fetch_add(1, std::memory_order_relaxed);
    notify_fn fn;
    void* ctx;
    {
      std::lock_guard lk(mu_);
      fn = notify_fn_;
      ctx = notify_context_;
    }
    if (fn != nullptr) fn(ctx, first, count);
  }

  mutable std::mutex mu_;
  std::unique_ptr<range[]> ranges_;
  std::size_t capacity_;
  std::size_t count_ = 0;
  notify_fn notify_fn_ = nullptr;
  void* notify_context_ = nullptr;
  std::atomic<std::uint64_t> notifications_{0};
};

} // namespace flushkit::pmem
