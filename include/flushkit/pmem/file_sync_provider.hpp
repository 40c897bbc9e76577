// flushkit/pmem/file_sync_provider.hpp - flush = msync(MS_SYNC) or fdatasync of the backing.
#pragma once

#include <flushkit/core/capabilities.hpp>
#include <flushkit/core/status.hpp>
#include <flushkit/pmem/backing.hpp>

#include <atomic>
#include <cstdint>

namespace flushkit::pmem {

/// How `file_sync_provider` flushes.
enum class file_sync_mode : std::uint8_t {
  msync,     ///< msync(MS_SYNC) over the whole mapping
  fdatasync, ///< fdatasync(fd) of the backing's file
};

/// Synchronous provider for a page-cache mapping (`persistence::page_cache`):
/// a file mapped MAP_SHARED without MAP_SYNC (or a memfd).
///
/// Durability contract: when `flush()` returns success, every store made to
/// the mapping before the call has been written to the file and the file
/// system reported it stable (the data and the metadata needed to read it
/// back, as fdatasync promises; msync(MS_SYNC) gives the same on Linux). For a
/// memfd the call succeeds but nothing outlives the last reference. On failure
/// (e.g. EIO from write-back, EBADF for anonymous memory with fdatasync) the
/// system status is returned; a `region` turns it into `io_error`.
///
/// Thread-safety: `flush()` may be called concurrently. The referenced
/// backing must outlive the provider. No allocation.
class file_sync_provider {
public:
  /// A provider for `b` (which must outlive it) flushing with `mode`.
  explicit file_sync_provider(const backing& b, file_sync_mode mode = file_sync_mode::fdatasync) noexcept
      : backing_(&b), mode_(mode) {}

  /// Effects: msync(MS_SYNC) of the whole mapping or fdatasync of the file, per `mode()`. Returns: success, or the system error (generic category).
  [[nodiscard]] status flush() noexcept {
    flushes_.fetch_add(1, std::memory_order_relaxed);
    return mode_ == file_sync_mode::msync ? backing_->msync() : backing_->fdatasync();
  }

  /// Capability: it makes stores to a shared file mapping durable (`durability_scope::page_cache`).
  durability_scope durability() const noexcept { return durability_scope::page_cache; }
  /// How `flush()` syncs.
  file_sync_mode mode() const noexcept { return mode_; }
  /// Calls of `flush()` so far.
  std::uint64_t flushes() const noexcept { return flushes_.load(std::memory_order_relaxed); }

private:
  const backing* backing_;
  file_sync_mode mode_;
  std::atomic<std::uint64_t> flushes_{0};
};

} // namespace flushkit::pmem
