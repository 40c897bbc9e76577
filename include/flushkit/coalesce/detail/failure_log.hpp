// flushkit/coalesce/detail/failure_log.hpp - which epochs a failed group flush covered.
#pragma once

#include <flushkit/core/status.hpp>

#include <array>
#include <cstddef>
#include <cstdint>

namespace flushkit::detail {

/// Remembers the epoch ranges `(lo, hi]` of the most recent failed backend
/// flushes of a coalescer, so that a request whose data completed before a
/// failed flush was issued, but which asks for its flush only afterwards,
/// still gets that flush's error instead of a later success.
///
/// Exact for the last `Capacity` failures. Older failures are folded into
/// one conservative bound: an epoch at or below the highest forgotten range
/// reports the newest forgotten error even if a successful flush covered it
/// first (an error is never turned into a success; the reverse is allowed).
/// Not thread-safe: the owner's mutex protects it. Never allocates.
template <std::size_t Capacity = 8> class failure_log {
public:
  /// Records the outcome of a flush that covered epochs `(lo, hi]`.
  /// Successes are not stored.
  void record(std::uint64_t lo, std::uint64_t hi, const status& st) noexcept {
    if (!st) return;
    entry& slot = entries_[next_];
    if (slot.error) {
      forgotten_hi_ = slot.hi;
      forgotten_ = slot.error;
    }
    slot = entry{lo, hi, st};
    next_ = (next_ + 1) % Capacity;
  }

  /// The outcome of the first flush that covered `epoch`. Precondition: a
  /// flush covering `epoch` has completed.
  status outcome(std::uint64_t epoch) const noexcept {
    for (const entry& e : entries_)
      if (e.error && e.lo < epoch && epoch <= e.hi) return e.error;
    if (epoch <= forgotten_hi_) return forgotten_;
    return {};
  }

private:
  struct entry {
    std::uint64_t lo = 0;
    std::uint64_t hi = 0;
    status error{};
  };
  std::array<entry, Capacity> entries_{};
  std::size_t next_ = 0;
  std::uint64_t forgotten_hi_ = 0;
  status forgotten_{};
};

} // namespace flushkit::detail
