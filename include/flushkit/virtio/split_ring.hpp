// flushkit/virtio/split_ring.hpp - VIRTIO 1.x split virtqueue layout, byte-compatible with <linux/virtio_ring.h>.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/virtio/guest_memory.hpp>

#include <cstddef>
#include <cstdint>

namespace flushkit::virtio {

// ---- wire constants (same values as <linux/virtio_ring.h>) -------------------

inline constexpr std::uint16_t desc_f_next = 1;     ///< VRING_DESC_F_NEXT
inline constexpr std::uint16_t desc_f_write = 2;    ///< VRING_DESC_F_WRITE (device write-only buffer)
inline constexpr std::uint16_t desc_f_indirect = 4; ///< VRING_DESC_F_INDIRECT
inline constexpr std::uint16_t avail_f_no_interrupt = 1; ///< VRING_AVAIL_F_NO_INTERRUPT
inline constexpr std::uint16_t used_f_no_notify = 1;     ///< VRING_USED_F_NO_NOTIFY
inline constexpr unsigned feature_indirect_desc = 28;    ///< VIRTIO_RING_F_INDIRECT_DESC
inline constexpr unsigned feature_event_idx = 29;        ///< VIRTIO_RING_F_EVENT_IDX

inline constexpr std::uint32_t max_queue_size = 32768;
inline constexpr std::uint64_t desc_align = 16;  ///< VRING_DESC_ALIGN_SIZE
inline constexpr std::uint64_t avail_align = 2;  ///< VRING_AVAIL_ALIGN_SIZE
inline constexpr std::uint64_t used_align = 4;   ///< VRING_USED_ALIGN_SIZE
inline constexpr std::size_t desc_size = 16;     ///< le64 addr, le32 len, le16 flags, le16 next
inline constexpr std::size_t used_elem_size = 8; ///< le32 id, le32 len

/// Ring features negotiated between driver and device (the two ring bits).
struct ring_features {
  bool event_idx = false;     ///< VIRTIO_RING_F_EVENT_IDX: used_event / avail_event suppression
  bool indirect_desc = false; ///< VIRTIO_RING_F_INDIRECT_DESC: indirect descriptor tables

  /// Returns: the two ring bits taken from a 64-bit feature word.
  static constexpr ring_features from_bits(std::uint64_t bits) noexcept {
    return {((bits >> feature_event_idx) & 1u) != 0, ((bits >> feature_indirect_desc) & 1u) != 0};
  }
};

/// vring_need_event: true iff `new_idx` moved past `event_idx` since `old_idx`
/// (all arithmetic modulo 2^16).
constexpr bool need_event(std::uint16_t event_idx, std::uint16_t new_idx, std::uint16_t old_idx) noexcept {
  return static_cast<std::uint16_t>(new_idx - event_idx - 1) < static_cast<std::uint16_t>(new_idx - old_idx);
}

/// Returns: {} when `n` is a power of two in 1..32768; invalid_request otherwise.
[[nodiscard]] inline status validate_queue_size(std::uint32_t n) noexcept {
  if (n == 0 || n > max_queue_size || (n & (n - 1)) != 0) return errc::invalid_request;
  return {};
}

// ---- sizes and offsets -------------------------------------------------------

constexpr std::uint64_t desc_table_bytes(std::uint32_t n) noexcept { return desc_size * std::uint64_t{n}; }
/// flags, idx, ring[n], used_event.
constexpr std::uint64_t avail_bytes(std::uint32_t n) noexcept { return 6 + 2 * std::uint64_t{n}; }
/// flags, idx, ring[n] of {id, len}, avail_event.
constexpr std::uint64_t used_bytes(std::uint32_t n) noexcept { return 6 + used_elem_size * std::uint64_t{n}; }

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) noexcept { return (v + a - 1) & ~(a - 1); }

/// vring_size(n, align): bytes of the legacy contiguous layout (`align` a power of two).
constexpr std::uint64_t legacy_ring_bytes(std::uint32_t n, std::uint64_t align) noexcept {
  return align_up(desc_table_bytes(n) + 2 * (3 + std::uint64_t{n}), align) + used_bytes(n);
}

/// Guest addresses of the three ring areas and the queue size.
struct ring_addresses {
  /// Queue size (entries).
  std::uint32_t size = 0;
  /// Guest address of the descriptor table (16-byte aligned).
  std::uint64_t desc = 0;
  /// Guest address of the available ring (2-byte aligned).
  std::uint64_t avail = 0;
  /// Guest address of the used ring (4-byte aligned).
  std::uint64_t used = 0;
};

/// vring_init: the legacy contiguous layout at guest address `base`: descriptor
/// table at base, avail ring right after it, used ring at the next `align`
/// boundary after the avail ring (with used_event).
/// Errors: invalid_request for a bad queue size, an `align` that is not a power
/// of two >= 4, a `base` not 16-aligned, or a layout overflowing 2^64.
[[nodiscard]] inline status legacy_layout(std::uint32_t n, std::uint64_t base, std::uint64_t align,
                               ring_addresses& out) noexcept {
  if (auto st = validate_queue_size(n)) return st;
  if (align < used_align || (align & (align - 1)) != 0 || base % desc_align != 0) return errc::invalid_request;
  if (base > UINT64_MAX - align - legacy_ring_bytes(n, align)) return errc::invalid_request;
  out.size = n;
  out.desc = base;
  out.avail = base + desc_table_bytes(n);
  out.used = align_up(out.avail + 2 * (3 + std::uint64_t{n}), align);
  return {};
}

/// VIRTIO 1.x separate placement: checks the queue size and the required
/// alignments (desc 16, avail 2, used 4) and that no area overflows or overlaps
/// another. Memory placement is checked by `split_ring::map`.
[[nodiscard]] inline status validate_layout(const ring_addresses& a) noexcept {
  if (auto st = validate_queue_size(a.size)) return st;
  if (a.desc % desc_align != 0 || a.avail % avail_align != 0 || a.used % used_align != 0)
    return errc::invalid_request;
  const std::uint64_t lo[3] = {a.desc, a.avail, a.used};
  const std::uint64_t len[3] = {desc_table_bytes(a.size), avail_bytes(a.size), used_bytes(a.size)};
  for (int i = 0; i < 3; ++i) {
    if (lo[i] > UINT64_MAX - len[i]) return errc::invalid_request;
    for (int j = 0; j < i; ++j)
      if (lo[i] < lo[j] + len[j] && lo[j] < lo[i] + len[i]) return errc::invalid_request;
  }
  return {};
}

/// A split ring whose three areas have been translated to host pointers.
/// Accessors return the host address of one field; read and write the fields
/// with the shared little-endian helpers (detail/le_access.hpp). The object is
/// a plain value (copyable, no ownership).
class split_ring {
public:
  split_ring() = default;

  /// Effects: validates `a` (validate_layout) and translates the three areas
  /// through `mem`; each must lie inside one guest memory region.
  /// Errors: invalid_request; `out` is unchanged on error.
  [[nodiscard]] static status map(const guest_memory& mem, const ring_addresses& a, split_ring& out) noexcept {
    if (auto st = validate_layout(a)) return st;
    std::byte* d = mem.translate(a.desc, desc_table_bytes(a.size));
    std::byte* av = mem.translate(a.avail, avail_bytes(a.size));
    std::byte* u = mem.translate(a.used, used_bytes(a.size));
    if (d == nullptr || av == nullptr || u == nullptr) return errc::invalid_request;
    out = split_ring(a, d, av, u);
    return {};
  }

  /// Queue size (0 when not mapped).
  std::uint32_t size() const noexcept { return addr_.size; }
  /// The guest addresses the ring was mapped from.
  const ring_addresses& addresses() const noexcept { return addr_; }
  /// True once `map` succeeded.
  bool mapped() const noexcept { return desc_ != nullptr; }

  /// Descriptor `i` (16 bytes, little-endian fields) in shared memory.
  std::byte* desc(std::uint32_t i) const noexcept { return desc_ + desc_size * i; }
  /// avail.flags (le16).
  std::byte* avail_flags() const noexcept { return avail_; }
  /// avail.idx (le16).
  std::byte* avail_idx() const noexcept { return avail_ + 2; }
  /// avail.ring[i] (le16).
  std::byte* avail_ring(std::uint32_t i) const noexcept { return avail_ + 4 + 2 * std::size_t{i}; }
  std::byte* used_event() const noexcept { return avail_ring(addr_.size); } ///< vring_used_event
  /// used.flags (le16).
  std::byte* used_flags() const noexcept { return used_; }
  /// used.idx (le16).
  std::byte* used_idx() const noexcept { return used_ + 2; }
  /// used.ring[i].id (le32).
  std::byte* used_id(std::uint32_t i) const noexcept { return used_ + 4 + used_elem_size * i; }
  /// used.ring[i].len (le32).
  std::byte* used_len(std::uint32_t i) const noexcept { return used_id(i) + 4; }
  std::byte* avail_event() const noexcept { return used_id(addr_.size); } ///< vring_avail_event

  /// Returns: true when guest [addr, addr + len) overlaps one of the ring areas.
  bool overlaps(std::uint64_t addr, std::uint64_t len) const noexcept {
    const std::uint64_t lo[3] = {addr_.desc, addr_.avail, addr_.used};
    const std::uint64_t n[3] = {desc_table_bytes(addr_.size), avail_bytes(addr_.size), used_bytes(addr_.size)};
    for (int i = 0; i < 3; ++i)
      if (addr >= lo[i] ? addr - lo[i] < n[i] : lo[i] - addr < len) return true;
    return false;
  }

private:
  split_ring(const ring_addresses& a, std::byte* d, std::byte* av, std::byte* u) noexcept
      : addr_(a), desc_(d), avail_(av), used_(u) {}

  ring_addresses addr_{};
  std::byte* desc_ = nullptr;
  std::byte* avail_ = nullptr;
  std::byte* used_ = nullptr;
};

} // namespace flushkit::virtio
