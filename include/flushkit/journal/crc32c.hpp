// flushkit/journal/crc32c.hpp - CRC-32C: the SSE4.2 crc32 instruction when the CPU has it, Boost.CRC otherwise.
#pragma once

#include <flushkit/journal/detail/crc32c_hw.hpp>

#include <boost/crc.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

// These names live in `flushkit`, not `flushkit::journal`: `flushkit::journal` is the journal type
// (journal.hpp), and a namespace cannot share its name.
namespace flushkit {

/// Which implementation computes CRC-32C.
enum class crc32c_engine : std::uint8_t {
  hardware, ///< the SSE4.2 `crc32` instruction (x86-64 only)
  portable, ///< Boost.CRC's table-driven `crc_optimal`
};

/// Returns: whether this CPU executes the SSE4.2 `crc32` instruction (x86-64 with
/// CPUID.1:ECX[20]); always false on other architectures. CPUID runs once, at the
/// first call. Thread-safety: may be called from any thread, concurrently. No allocation.
inline bool crc32c_hardware_available() noexcept {
  static const bool available = journal_detail::cpu_has_sse42();
  return available;
}

/// Returns: the CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected input and
/// output, initial value and final xor 0xFFFFFFFF) of `bytes` following bytes whose
/// CRC-32C is `crc` (0, the CRC of no bytes, to start): `crc32c_portable(b,
/// crc32c_portable(a))` equals the CRC of `a` followed by `b`. Computed with Boost.CRC's
/// `crc_optimal`, on any CPU. An empty `bytes` returns `crc`. Thread-safety: pure, may be
/// called concurrently. No allocation.
inline std::uint32_t crc32c_portable(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> engine;
  // The running register after the earlier bytes is `crc ^ ~0`, in the reflected domain.
  // `crc_optimal::reset` takes the register unreflected (as `get_interim_remainder` gives it),
  // so reflect it back before resuming.
  const std::uint32_t reg = crc ^ 0xFFFFFFFFu;
  std::uint32_t unreflected = 0;
  for (unsigned bit = 0; bit < 32; ++bit) unreflected |= ((reg >> bit) & 1u) << (31u - bit);
  engine.reset(unreflected);
  engine.process_bytes(bytes.data(), bytes.size());
  return engine.checksum();
}

/// Returns: the same value as `crc32c_portable(bytes, crc)`, computed with the SSE4.2
/// `crc32` instruction (8 bytes at a time, then single bytes; any alignment).
/// Precondition: `crc32c_hardware_available()`; otherwise the behaviour is undefined
/// (on x86-64 an illegal instruction; elsewhere the result is meaningless).
/// Thread-safety: pure, may be called concurrently. No allocation.
inline std::uint32_t crc32c_hardware(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept {
  return journal_detail::crc32c_sse42(bytes, crc ^ 0xFFFFFFFFu) ^ 0xFFFFFFFFu;
}

/// Returns: the engine `crc32c` uses: `hardware` when `crc32c_hardware_available()`,
/// else `portable`. Chosen once, at the first call of this function or of `crc32c`,
/// and the same for the whole process afterwards. Thread-safety: may be called from
/// any thread, concurrently (the choice is a function-local static). No allocation.
inline crc32c_engine crc32c_selected() noexcept {
  static const crc32c_engine selected =
      crc32c_hardware_available() ? crc32c_engine::hardware : crc32c_engine::portable;
  return selected;
}

/// Returns: the CRC-32C of `bytes` following bytes whose CRC-32C is `crc` (0 to start),
/// as `crc32c_portable` defines it: `crc32c(b, crc32c(a)) == crc32c(a ++ b)`. Computed by
/// the engine `crc32c_selected()` names (one cached branch per call). Thread-safety:
/// may be called from any thread, concurrently. No allocation.
inline std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept {
  return crc32c_selected() == crc32c_engine::hardware ? crc32c_hardware(bytes, crc) : crc32c_portable(bytes, crc);
}

} // namespace flushkit
