// flushkit/pmem/detail/cpu_flush.hpp - cache-line write-back instructions chosen at run time.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace flushkit::pmem {

/// The instruction a cache-line provider uses to push a line out of the CPU cache.
enum class flush_instruction : std::uint8_t {
  clwb,       ///< write back, line may stay cached (x86-64, CPUID.7.0:EBX[24])
  clflushopt, ///< write back and invalidate, weakly ordered (CPUID.7.0:EBX[23])
  clflush,    ///< write back and invalidate, ordered (x86-64 baseline)
  fence_only, ///< no write-back instruction (every non-x86-64 build): a fence only, so a
              ///< `cpu_line_writer` with it is not usable (`not_supported`)
};

namespace detail {

inline constexpr std::size_t cache_line_size = 64;

/// Whether the CPU executes `insn` (fence_only is always available).
inline bool cpu_supports(flush_instruction insn) noexcept {
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  switch (insn) {
  case flush_instruction::clwb:
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 && (b & (1u << 24)) != 0;
  case flush_instruction::clflushopt:
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 && (b & (1u << 23)) != 0;
  case flush_instruction::clflush:
    return __get_cpuid(1, &a, &b, &c, &d) != 0 && (d & (1u << 19)) != 0;
  case flush_instruction::fence_only:
    return true;
  }
  return false;
#else
  return insn == flush_instruction::fence_only;
#endif
}

/// The best available instruction: CLWB, else CLFLUSHOPT, else CLFLUSH.
inline flush_instruction detect_flush_instruction() noexcept {
  for (flush_instruction i : {flush_instruction::clwb, flush_instruction::clflushopt, flush_instruction::clflush})
    if (cpu_supports(i)) return i;
  return flush_instruction::fence_only;
}

/// Writes back the cache line holding `p` (nothing for fence_only).
/// Precondition: `cpu_supports(insn)`. The encodings are emitted as bytes
/// so no -mclwb / -mclflushopt flag is needed: 66 0F AE /6 is CLWB,
/// 66 0F AE /7 is CLFLUSHOPT, both with the address in RDI (ModRM 0x37 / 0x3F).
inline void write_back_line(flush_instruction insn, const void* p) noexcept {
#if defined(__x86_64__)
  switch (insn) {
  case flush_instruction::clwb:
    asm volatile(".byte 0x66, 0x0f, 0xae, 0x37" : : "D"(p) : "memory");
    break;
  case flush_instruction::clflushopt:
    asm volatile(".byte 0x66, 0x0f, 0xae, 0x3f" : : "D"(p) : "memory");
    break;
  case flush_instruction::clflush:
    asm volatile("clflush (%0)" : : "r"(p) : "memory");
    break;
  case flush_instruction::fence_only:
    break;
  }
#else
  static_cast<void>(insn);
  static_cast<void>(p);
#endif
}

/// The fence that orders earlier write-backs before later stores (SFENCE on
/// x86-64; a seq_cst fence elsewhere).
inline void write_back_fence() noexcept {
#if defined(__x86_64__)
  asm volatile("sfence" : : : "memory");
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

} // namespace detail
} // namespace flushkit::pmem
