// flushkit/virtio/detail/descriptor.hpp - one split-ring descriptor: private copy, single read, single write.
#pragma once

#include <flushkit/virtio/detail/le_access.hpp>
#include <flushkit/virtio/split_ring.hpp>

#include <cstddef>
#include <cstdint>

namespace flushkit::virtio::detail {

/// A descriptor decoded into private memory.
struct descriptor {
  std::uint64_t addr = 0;
  std::uint32_t len = 0;
  std::uint16_t flags = 0;
  std::uint16_t next = 0;
};

/// Reads the 16 bytes at `p` exactly once (any alignment) and decodes them.
/// Nothing is read from `p` again afterwards: validation uses the copy (TOCTOU).
inline descriptor read_descriptor_once(std::byte* p) noexcept {
  unsigned char raw[desc_size];
  copy_once(raw, p, desc_size);
  return {decode_le<std::uint64_t>(raw), decode_le<std::uint32_t>(raw + 8), decode_le<std::uint16_t>(raw + 12),
          decode_le<std::uint16_t>(raw + 14)};
}

/// Writes a descriptor at `p` (16-aligned, inside a descriptor table).
inline void write_descriptor(std::byte* p, const descriptor& d) noexcept {
  store_le<std::uint64_t>(p, d.addr);
  store_le<std::uint32_t>(p + 8, d.len);
  store_le<std::uint16_t>(p + 12, d.flags);
  store_le<std::uint16_t>(p + 14, d.next);
}

} // namespace flushkit::virtio::detail
