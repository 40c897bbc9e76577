// flushkit/pmem/hint_provider.hpp - a model of the generic flush-hint (WPQ) flush.
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/detail/assert.hpp>
#include <flushkit/pmem/detail/cpu_flush.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace flushkit::pmem {

/// A small, honest model of the kernel's `generic_nvdimm_flush()`: each DIMM
/// of a region may have a flush-hint address (slot 0), and a flush writes to
/// each distinct hint once, between two fences.
///
/// What is modelled: the "hint addresses" are ordinary `std::uint64_t` words
/// in process memory (not MMIO), given at construction, one per DIMM
/// (`nullptr` = a DIMM without hints). As in `nvdimm_map_flush`, a DIMM whose
/// hint address equals an earlier DIMM's is dropped, so the same write-pending
/// queue is not flushed twice. What is not modelled: per-CPU rotation over
/// several hint slots, ioremap, real write-pending queues.
///
/// Durability contract: in this model, success only means every earlier store
/// is ordered before the hint writes (fence; one volatile store of 1 per
/// unique hint; fence). On real hardware the same sequence drains the DIMMs'
/// write-pending queues. Always succeeds; no allocation; thread-safe.
class hint_provider {
public:
  /// Most DIMMs one provider models.
  static constexpr std::size_t max_dimms = 32;

  /// `dimm_hints[i]` is DIMM i's hint word or nullptr. Precondition: at most
  /// `max_dimms` entries (the rest are ignored).
  explicit hint_provider(std::span<std::uint64_t* const> dimm_hints) noexcept {
    FLUSHKIT_ASSERT(dimm_hints.size() <= max_dimms, "too many DIMMs for hint_provider");
    for (std::size_t i = 0; i < dimm_hints.size() && i < max_dimms; ++i)
      if (dimm_hints[i] != nullptr && !known(dimm_hints[i])) hints_[unique_++] = dimm_hints[i];
  }

  /// Effects: write-back fence, one store to each unique hint word, full fence. Returns: success.
  [[nodiscard]] status flush() noexcept {
    detail::write_back_fence();
    for (std::size_t i = 0; i < unique_; ++i) *static_cast<volatile std::uint64_t*>(hints_[i]) = 1;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    writes_.fetch_add(unique_, std::memory_order_relaxed);
    return {};
  }

  /// Capability: in this model nothing is written back
  /// (`durability_scope::none`), so a device over a file refuses it.
  durability_scope durability() const noexcept { return durability_scope::none; }
  /// Distinct hint addresses written per flush.
  std::size_t unique_hints() const noexcept { return unique_; }
  /// Hint writes over all flushes.
  std::uint64_t hint_writes() const noexcept { return writes_.load(std::memory_order_relaxed); }

private:
  bool known(const std::uint64_t* p) const noexcept {
    for (std::size_t i = 0; i < unique_; ++i)
      if (hints_[i] == p) return true;
    return false;
  }

  std::array<std::uint64_t*, max_dimms> hints_{};
  std::size_t unique_ = 0;
  std::atomic<std::uint64_t> writes_{0};
};

} // namespace flushkit::pmem
