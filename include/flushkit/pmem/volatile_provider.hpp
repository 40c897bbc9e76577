// flushkit/pmem/volatile_provider.hpp - flush of a volatile region: nothing to do.
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/status.hpp>

#include <atomic>
#include <cstdint>

namespace flushkit::pmem {

/// Synchronous provider for a volatile region (anonymous memory, a memfd used
/// as a scratch disk): `flush()` does nothing and succeeds.
///
/// Durability contract: none. Success means only that every earlier store is
/// visible to later readers of the same memory (which ordinary memory
/// ordering already gives); nothing survives the process or a power loss.
/// Use it where the medium is volatile by design; a device over such a
/// region is usually created without a write cache, so flushes are stripped
/// before they reach the provider. No allocation; thread-safe.
class volatile_provider {
public:
  /// Effects: counts the call. Returns: success.
  [[nodiscard]] status flush() noexcept {
    flushes_.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  /// Capability: nothing becomes durable (`durability_scope::none`), so a
  /// device over a file or MAP_SYNC backing refuses it.
  durability_scope durability() const noexcept { return durability_scope::none; }
  /// Calls of `flush()` so far.
  std::uint64_t flushes() const noexcept { return flushes_.load(std::memory_order_relaxed); }

private:
  std::atomic<std::uint64_t> flushes_{0};
};

} // namespace flushkit::pmem
