// flushkit/virtio/detail/le_access.hpp - little-endian, single-access loads and stores of shared ring memory.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace flushkit::virtio::detail {

// Every access to memory the other side may write concurrently (a ring shared
// with a guest or a device, possibly in another process) goes through
// std::atomic_ref: each access is exactly one load or store (no re-read the
// compiler could invent), and a concurrent writer is not a data race. The
// values are little-endian in memory whatever the host byte order.

template <class T> constexpr T byteswap_if_big(T v) noexcept {
  static_assert(std::is_unsigned_v<T>);
  if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
    return v;
  } else {
    T r = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      r = static_cast<T>((r << 8) | (v & 0xFFu));
      v = static_cast<T>(v >> 8);
    }
    return r;
  }
}

template <class T> inline std::atomic_ref<T> shared_ref(std::byte* p) noexcept {
  static_assert(std::atomic_ref<T>::is_always_lock_free, "ring fields must be lock-free for shared memory");
  return std::atomic_ref<T>(*reinterpret_cast<T*>(p));
}

/// Loads a little-endian T from `p` (which must be aligned for T) with one access.
template <class T> inline T load_le(std::byte* p, std::memory_order mo = std::memory_order_relaxed) noexcept {
  return byteswap_if_big<T>(shared_ref<T>(p).load(mo));
}

/// Stores `v` little-endian at `p` (aligned for T) with one access.
template <class T>
inline void store_le(std::byte* p, T v, std::memory_order mo = std::memory_order_relaxed) noexcept {
  shared_ref<T>(p).store(byteswap_if_big<T>(v), mo);
}

/// Decodes a little-endian T from private bytes (no sharing concerns).
template <class T> constexpr T decode_le(const unsigned char* b) noexcept {
  T v = 0;
  for (std::size_t i = sizeof(T); i-- > 0;) v = static_cast<T>((v << 8) | b[i]);
  return v;
}

/// Copies `n` bytes of shared memory into private memory, reading each byte once.
/// Uses 8-byte accesses when `src` is 8-aligned and `n` a multiple of 8.
inline void copy_once(unsigned char* dst, std::byte* src, std::size_t n) noexcept {
  if (reinterpret_cast<std::uintptr_t>(src) % 8 == 0 && n % 8 == 0) {
    for (std::size_t i = 0; i < n; i += 8) {
      const std::uint64_t w = load_le<std::uint64_t>(src + i);
      for (std::size_t k = 0; k < 8; ++k) dst[i + k] = static_cast<unsigned char>(w >> (8 * k));
    }
    return;
  }
  for (std::size_t i = 0; i < n; ++i) dst[i] = load_le<std::uint8_t>(src + i);
}

} // namespace flushkit::virtio::detail
