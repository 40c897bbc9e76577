// flushkit/virtio/guest_memory.hpp - bounds-checked view of guest physical memory (regions of host memory).
#pragma once

#include <flushkit/core/status.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace flushkit::virtio {

/// One contiguous range of guest physical addresses backed by host memory.
struct memory_region {
  std::uint64_t guest_base = 0; ///< first guest address of the region
  std::byte* host = nullptr;    ///< host address of `guest_base`
  std::uint64_t size = 0;       ///< bytes; `guest_base + size` does not overflow
};

/// A fixed set (at most `max_regions`) of non-overlapping guest memory regions.
///
/// Every guest address the ring layer touches (descriptor table, avail and used
/// rings, indirect tables, buffers) is translated here; a range that does not
/// lie entirely inside ONE region (overflowing `addr + len`, straddling two
/// regions even if they are adjacent, or past the end) does not translate.
///
/// Threading: `add_region` is set-up only (not thread-safe, and no region may be
/// added while a queue uses this object). `translate` and `guest_address` are
/// const and may be called from any number of threads. The object does not own
/// the host memory; the memory must outlive every queue that uses this view.
/// Allocation: none.
class guest_memory {
public:
  /// Most regions one view holds.
  static constexpr std::size_t max_regions = 8;

  guest_memory() = default;

  /// Convenience: a view with one region.
  guest_memory(std::uint64_t guest_base, void* host, std::uint64_t size) noexcept {
    (void)add_region(guest_base, host, size);
  }

  /// Effects: adds a region mapping guest [guest_base, guest_base + size) to
  /// host [host, host + size).
  /// Errors: invalid_request when `host` is null, `size` is 0, the guest range
  /// overflows 2^64 or overlaps an existing region, or `host` and `guest_base`
  /// differ modulo 16 (guest alignment must equal host alignment, so aligned ring
  /// fields can be accessed atomically); no_space when `max_regions` are in use.
  [[nodiscard]] status add_region(std::uint64_t guest_base, void* host, std::uint64_t size) noexcept {
    if (host == nullptr || size == 0 || guest_base > UINT64_MAX - size ||
        (reinterpret_cast<std::uintptr_t>(host) - guest_base) % 16 != 0)
      return errc::invalid_request;
    for (std::size_t i = 0; i < count_; ++i) {
      const memory_region& r = regions_[i];
      if (guest_base < r.guest_base + r.size && r.guest_base < guest_base + size) return errc::invalid_request;
    }
    if (count_ == max_regions) return errc::no_space;
    regions_[count_++] = memory_region{guest_base, static_cast<std::byte*>(host), size};
    return {};
  }

  /// Returns: the host address of guest [addr, addr + len) when the whole range
  /// lies inside one region and `len` > 0; nullptr otherwise (never UB, also
  /// for `addr + len` overflowing).
  std::byte* translate(std::uint64_t addr, std::uint64_t len) const noexcept {
    if (len == 0) return nullptr;
    for (std::size_t i = 0; i < count_; ++i) {
      const memory_region& r = regions_[i];
      if (addr >= r.guest_base && addr - r.guest_base < r.size && len <= r.size - (addr - r.guest_base))
        return r.host + (addr - r.guest_base);
    }
    return nullptr;
  }

  /// Returns: the guest address of host [p, p + len) when it lies inside one
  /// region and `len` > 0; std::nullopt otherwise. Used by drivers to name their
  /// own buffers in descriptors.
  std::optional<std::uint64_t> guest_address(const void* p, std::uint64_t len) const noexcept {
    const auto hp = reinterpret_cast<std::uintptr_t>(p);
    if (len == 0) return std::nullopt;
    for (std::size_t i = 0; i < count_; ++i) {
      const memory_region& r = regions_[i];
      const auto base = reinterpret_cast<std::uintptr_t>(r.host);
      if (hp >= base && hp - base < r.size && len <= r.size - (hp - base)) return r.guest_base + (hp - base);
    }
    return std::nullopt;
  }

  /// Regions added so far.
  std::size_t region_count() const noexcept { return count_; }
  /// Region `i`. Precondition: `i < region_count()`.
  const memory_region& region(std::size_t i) const noexcept { return regions_[i]; }

private:
  std::array<memory_region, max_regions> regions_{};
  std::size_t count_ = 0;
};

} // namespace flushkit::virtio
