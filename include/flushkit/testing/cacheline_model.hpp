// flushkit/testing/cacheline_model.hpp - the real cacheline_provider over a simulated CPU cache.
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/pmem/cacheline_provider.hpp>
#include <flushkit/testing/volatile_cache.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>

namespace flushkit::testing {

/// A `pmem::line_writer` that writes back into a `volatile_cache`, so the
/// real `pmem::cacheline_provider` range tracking runs under the crash
/// checker (`cacheline_model_provider`).
///
/// The cache's `medium()` plays the CPU cache: the device stores into it and
/// tells the provider (`note_dirty`), never the cache. `write_back(p, len)`
/// notes [p, p + len), clamped to `medium()`, in the cache (`note_dirty`):
/// the lines are pending, in flight to the memory controller, and a power cut
/// keeps them or not as its policy says. `fence()` makes them durable
/// (`volatile_cache::flush()`). Lines never written back are not in the
/// cache's log, so every power cut loses them: a wrapper that hides
/// `note_dirty` from the provider loses acknowledged writes visibly.
///
/// Limits of the model: a fence makes durable every line written back before
/// it on any thread (the CPU orders only its own thread's write-backs), and
/// lines are never evicted on their own (a real cache may write a dirty line
/// back at any time; the crash images that would give are not produced).
///
/// Errors: a fence whose cache flush fails (`volatile_cache::fail_next_flush`)
/// keeps that status (the first one) until `clear_error()`: `usable()`
/// returns it, so the provider's `flush()` returns it, tracks nothing new and
/// refuses further flushes. `durability()` is `cpu_cache`.
///
/// Thread-safety: every member may be called concurrently (the cache is
/// thread-safe). `write_back` and `fence` are noexcept: the cache's hook must
/// not throw. Allocation: none. The cache must outlive the writer.
class cacheline_model {
public:
  /// A writer into `cache`.
  explicit cacheline_model(volatile_cache& cache) noexcept : cache_(&cache) {}
  /// Moves the cache reference and the kept error (before the writer is shared).
  cacheline_model(cacheline_model&& other) noexcept
      : cache_(other.cache_), error_(other.usable()) {}
  cacheline_model& operator=(cacheline_model&&) = delete;

  /// Notes the part of [first_byte, first_byte + len) inside `medium()` in the cache.
  void write_back(const void* first_byte, std::size_t len) noexcept {
    const std::span<std::byte> m = cache_->medium();
    const auto base = reinterpret_cast<std::uintptr_t>(m.data());
    const auto first = reinterpret_cast<std::uintptr_t>(first_byte);
    const std::uintptr_t lo = std::max(first, base), hi = std::min(first + len, base + m.size());
    if (lo < hi) cache_->note_dirty(m.data() + (lo - base), hi - lo);
  }
  /// `volatile_cache::flush()`; a failure is kept (see Errors).
  void fence() noexcept {
    const status st = cache_->flush();
    std::lock_guard lk(mu_);
    if (st && !error_) error_ = st;
  }
  /// Success, or the status of the first failed fence since construction or `clear_error()`.
  status usable() const noexcept {
    std::lock_guard lk(mu_);
    return error_;
  }
  /// `cpu_cache`.
  durability_scope durability() const noexcept { return durability_scope::cpu_cache; }

  /// Forgets a failed fence.
  void clear_error() noexcept {
    std::lock_guard lk(mu_);
    error_ = {};
  }
  /// The cache written back into.
  volatile_cache& cache() const noexcept { return *cache_; }

private:
  volatile_cache* cache_;
  mutable std::mutex mu_;
  status error_;
};

/// The real cache-line provider over a `volatile_cache`: `cacheline_model_provider<> p(cache);`.
template <std::size_t N = 16>
using cacheline_model_provider = pmem::cacheline_provider<N, cacheline_model>;

} // namespace flushkit::testing
