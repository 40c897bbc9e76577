// tests/support/virtio_guest.hpp - guest RAM (real mmap) and a raw, possibly hostile, ring writer for virtio tests.
#pragma once

#include <flushkit/virtio/detail/descriptor.hpp>
#include <flushkit/virtio/detail/le_access.hpp>
#include <flushkit/virtio/guest_memory.hpp>
#include <flushkit/virtio/split_ring.hpp>

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace flushkit_test {

namespace fv = flushkit::virtio;

/// Anonymous mmap'd "guest RAM" at guest address `base`, one region.
class guest_ram {
public:
  static constexpr std::uint64_t default_base = 0x100000;

  explicit guest_ram(std::uint64_t size = 1 << 20, std::uint64_t base = default_base) : base_(base), size_(size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    host_ = static_cast<std::byte*>(p);
    if (mem.add_region(base, host_, size)) throw std::runtime_error("add_region");
  }
  ~guest_ram() { ::munmap(host_, size_); }
  guest_ram(const guest_ram&) = delete;
  guest_ram& operator=(const guest_ram&) = delete;

  std::byte* host(std::uint64_t gpa) const { return host_ + (gpa - base_); }
  std::uint64_t base() const { return base_; }
  std::uint64_t size() const { return size_; }
  /// Guest address of the data area (past any ring placed at base()).
  std::uint64_t data(std::uint64_t off = 0) const { return base_ + size_ / 2 + off; }

  fv::guest_memory mem;

private:
  std::uint64_t base_;
  std::uint64_t size_;
  std::byte* host_ = nullptr;
};

/// Ring addresses of the legacy layout (align 4096) at the start of `ram`.
inline fv::ring_addresses ring_at(const guest_ram& ram, std::uint32_t n) {
  fv::ring_addresses a;
  if (fv::legacy_layout(n, ram.base(), 4096, a)) throw std::runtime_error("layout");
  return a;
}

/// Writes ring fields directly, as a (possibly malicious) guest driver would.
class raw_guest {
public:
  raw_guest(const guest_ram& ram, const fv::ring_addresses& a) {
    if (fv::split_ring::map(ram.mem, a, ring)) throw std::runtime_error("map");
    std::memset(ring.desc(0), 0, fv::desc_table_bytes(a.size));
    std::memset(ring.avail_flags(), 0, fv::avail_bytes(a.size));
    std::memset(ring.used_flags(), 0, fv::used_bytes(a.size));
  }

  void desc(std::uint32_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags = 0, std::uint16_t next = 0) {
    fv::detail::write_descriptor(ring.desc(i), {addr, len, flags, next});
  }
  /// Writes a descriptor at an arbitrary host location (an indirect table).
  static void desc_at(std::byte* p, std::uint64_t addr, std::uint32_t len, std::uint16_t flags = 0,
                      std::uint16_t next = 0) {
    unsigned char raw[16];
    for (int k = 0; k < 8; ++k) raw[k] = static_cast<unsigned char>(addr >> (8 * k));
    for (int k = 0; k < 4; ++k) raw[8 + k] = static_cast<unsigned char>(len >> (8 * k));
    raw[12] = static_cast<unsigned char>(flags);
    raw[13] = static_cast<unsigned char>(flags >> 8);
    raw[14] = static_cast<unsigned char>(next);
    raw[15] = static_cast<unsigned char>(next >> 8);
    for (int k = 0; k < 16; ++k) fv::detail::store_le<std::uint8_t>(p + k, raw[k]);
  }
  /// Puts `head` in the next avail slot and publishes avail.idx (release).
  void publish(std::uint16_t head) {
    fv::detail::store_le<std::uint16_t>(ring.avail_ring(avail_idx & (ring.size() - 1)), head);
    set_avail_idx(static_cast<std::uint16_t>(avail_idx + 1));
  }
  void set_avail_idx(std::uint16_t v) {
    avail_idx = v;
    fv::detail::store_le<std::uint16_t>(ring.avail_idx(), v, std::memory_order_release);
  }
  std::uint16_t used_idx() const {
    return fv::detail::load_le<std::uint16_t>(ring.used_idx(), std::memory_order_acquire);
  }
  std::uint32_t used_id(std::uint32_t slot) const { return fv::detail::load_le<std::uint32_t>(ring.used_id(slot)); }
  std::uint32_t used_len(std::uint32_t slot) const { return fv::detail::load_le<std::uint32_t>(ring.used_len(slot)); }
  /// Device-side writes, for driver tests against a misbehaving device.
  void push_used_raw(std::uint32_t id, std::uint32_t len) {
    const std::uint32_t slot = used & (ring.size() - 1);
    fv::detail::store_le<std::uint32_t>(ring.used_id(slot), id);
    fv::detail::store_le<std::uint32_t>(ring.used_len(slot), len);
    used = static_cast<std::uint16_t>(used + 1);
    fv::detail::store_le<std::uint16_t>(ring.used_idx(), used, std::memory_order_release);
  }

  fv::split_ring ring;
  std::uint16_t avail_idx = 0;
  std::uint16_t used = 0;
};

} // namespace flushkit_test
