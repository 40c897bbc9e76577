// flushkit/journal/detail/crc32c_hw.hpp - the SSE4.2 crc32 instruction for CRC-32C, and its CPUID check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#if defined(__x86_64__)
#include <cpuid.h> // not <nmmintrin.h>: it pulls in mm_malloc.h, whose posix_memalign
#endif                // declaration clashes with a program that replaces the allocator

namespace flushkit::journal_detail {

#if defined(__x86_64__)

/// Returns: whether CPUID.1:ECX[20] (SSE4.2, which has `crc32`) is set. Runs CPUID on every call.
inline bool cpu_has_sse42() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & (1u << 20)) != 0;
}

/// Returns: the CRC-32C register `reg` (reflected domain, no initial or final inversion)
/// advanced over `bytes`: the `crc32` instruction on 8-byte chunks, then on single bytes
/// (the compiler builtins behind `_mm_crc32_u64` / `_mm_crc32_u8`, g++ and clang alike).
/// Unaligned input is fine (chunks are loaded with memcpy). Compiled for SSE4.2 by the
/// target attribute, so no -msse4.2 is needed. Precondition: `cpu_has_sse42()`.
__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_sse42(std::span<const std::byte> bytes,
                                                                     std::uint32_t reg) noexcept {
  const std::byte* p = bytes.data();
  std::size_t n = bytes.size();
  std::uint64_t r = reg;
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t chunk = 0;
    std::memcpy(&chunk, p, sizeof chunk);
    r = __builtin_ia32_crc32di(r, chunk);
  }
  auto r32 = static_cast<std::uint32_t>(r);
  for (; n > 0; ++p, --n) r32 = __builtin_ia32_crc32qi(r32, std::to_integer<unsigned char>(*p));
  return r32;
}

#else

/// Returns: false (no SSE4.2 outside x86-64).
inline bool cpu_has_sse42() noexcept { return false; }

/// Never called (its precondition, `cpu_has_sse42()`, never holds here); returns `reg` unchanged.
inline std::uint32_t crc32c_sse42(std::span<const std::byte>, std::uint32_t reg) noexcept { return reg; }

#endif

} // namespace flushkit::journal_detail
