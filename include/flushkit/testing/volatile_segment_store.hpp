// flushkit/testing/volatile_segment_store.hpp - journal segments on simulated volatile write caches, with power cuts.
#pragma once

#include <flushkit/core/status.hpp>
#include <flushkit/journal/segment_store.hpp>
#include <flushkit/testing/volatile_cache.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace flushkit::testing {

/// Options of a `volatile_segment_store`.
struct volatile_segment_store_options {
  std::uint64_t segment_bytes = 16 * 1024; ///< bytes of each segment
  std::size_t log_entries = 256;           ///< pending writes each segment's cache holds
  /// Most segments that may exist at once (0: no limit); `create` beyond it
  /// fails with `no_space`, as on a full file system.
  std::size_t max_segments = 0;
};

/// A `segment_store` for power-loss tests of a journal: each segment is a
/// `volatile_cache` (writes pending until `sync`), and the directory
/// (which segments exist) is durable at once, as `segment_directory`'s
/// `create` and `remove` make it before they return.
///
/// Power: `cut_power_after(n)` lets `n` more store operations (`create`,
/// `remove`, `write`, `sync`) run; the next one fails with `io_error`, as
/// does every operation after it, until `reboot(policy)` applies the power
/// cut to every segment's pending writes (`volatile_cache::crash`, the
/// seed varied per segment) and turns the power back on: a journal opened
/// then sees exactly what survived.
///
/// Thread-safety: every member may be called concurrently (one lock
/// serialises the operations). Allocation: a cache per created segment.
class volatile_segment_store {
public:
  explicit volatile_segment_store(const volatile_segment_store_options& opts = {}) : opts_(opts) {}

  std::uint64_t segment_bytes() const noexcept { return opts_.segment_bytes; }

  [[nodiscard]] status list(std::vector<std::uint64_t>& out) {
    std::lock_guard lock(mutex_);
    out.clear();
    for (const auto& [index, cache] : segments_) out.push_back(index);
    return {};
  }

  [[nodiscard]] status create(std::uint64_t index) {
    std::lock_guard lock(mutex_);
    if (status st = operation_locked()) return st;
    if (opts_.max_segments != 0 && segments_.size() >= opts_.max_segments) return make_error_code(errc::no_space);
    segments_[index] = std::make_unique<volatile_cache>(volatile_cache_options{
        static_cast<std::size_t>(opts_.segment_bytes), opts_.log_entries, static_cast<std::size_t>(opts_.segment_bytes)});
    ++created_;
    return {};
  }

  [[nodiscard]] status remove(std::uint64_t index) {
    std::lock_guard lock(mutex_);
    if (status st = operation_locked()) return st;
    return segments_.erase(index) == 1 ? status{} : make_error_code(errc::io_error);
  }

  [[nodiscard]] status write(std::uint64_t index, std::uint64_t offset, std::span<const std::byte> bytes) {
    std::lock_guard lock(mutex_);
    if (status st = operation_locked()) return st;
    volatile_cache* c = find_locked(index, offset, bytes.size());
    if (c == nullptr) return make_error_code(errc::invalid_request);
    std::byte* dst = c->medium().data() + offset;
    std::memcpy(dst, bytes.data(), bytes.size());
    c->note_dirty(dst, bytes.size());
    return {};
  }

  [[nodiscard]] status read(std::uint64_t index, std::uint64_t offset, std::span<std::byte> bytes) {
    std::lock_guard lock(mutex_);
    if (!powered_) return make_error_code(errc::io_error);
    volatile_cache* c = find_locked(index, offset, bytes.size());
    if (c == nullptr) return make_error_code(errc::io_error);
    std::memcpy(bytes.data(), c->medium().data() + offset, bytes.size());
    return {};
  }

  [[nodiscard]] status sync(std::uint64_t index) {
    std::lock_guard lock(mutex_);
    if (status st = operation_locked()) return st;
    volatile_cache* c = find_locked(index, 0, 0);
    return c == nullptr ? make_error_code(errc::io_error) : c->flush();
  }

  /// Changes the most segments that may exist at once (0: no limit).
  void set_max_segments(std::size_t n) {
    std::lock_guard lock(mutex_);
    opts_.max_segments = n;
  }
  /// Lets `n` more operations run; the one after them cuts the power.
  void cut_power_after(std::size_t n) {
    std::lock_guard lock(mutex_);
    budget_ = n;
  }
  /// Cuts the power now: every later operation fails until `reboot`.
  void cut_power() {
    std::lock_guard lock(mutex_);
    powered_ = false;
  }
  /// Applies the power cut with `policy` to every segment's pending writes,
  /// then powers on with no cut scheduled.
  void reboot(const crash_policy& policy) {
    std::lock_guard lock(mutex_);
    for (auto& [index, cache] : segments_) {
      crash_policy p = policy;
      p.seed = policy.seed * 0x9E3779B97F4A7C15ull + index;
      cache->crash(p);
      cache->recover();
    }
    powered_ = true;
    budget_ = unlimited;
  }
  /// Operations run so far (including failed ones).
  std::size_t operations() const {
    std::lock_guard lock(mutex_);
    return operations_;
  }
  /// Whether the power is on.
  bool powered() const {
    std::lock_guard lock(mutex_);
    return powered_;
  }
  /// Segments created so far.
  std::size_t created() const {
    std::lock_guard lock(mutex_);
    return created_;
  }
  /// The durable image of segment `index` (empty if it does not exist).
  std::vector<std::byte> durable_image(std::uint64_t index) const {
    std::lock_guard lock(mutex_);
    const auto it = segments_.find(index);
    if (it == segments_.end()) return {};
    const auto d = it->second->durable();
    return {d.begin(), d.end()};
  }

private:
  static constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

  [[nodiscard]] status operation_locked() noexcept {
    ++operations_;
    if (powered_ && budget_ != unlimited && budget_-- == 0) powered_ = false;
    return powered_ ? status{} : make_error_code(errc::io_error);
  }

  volatile_cache* find_locked(std::uint64_t index, std::uint64_t offset, std::size_t len) const noexcept {
    const auto it = segments_.find(index);
    if (it == segments_.end() || offset > opts_.segment_bytes || len > opts_.segment_bytes - offset) return nullptr;
    return it->second.get();
  }

  volatile_segment_store_options opts_;
  mutable std::mutex mutex_;
  std::map<std::uint64_t, std::unique_ptr<volatile_cache>> segments_;
  std::size_t operations_ = 0;
  std::size_t budget_ = unlimited;
  std::size_t created_ = 0;
  bool powered_ = true;
};

static_assert(segment_store<volatile_segment_store>);

} // namespace flushkit::testing
