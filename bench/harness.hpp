// bench/harness.hpp - the closed-loop driver every model runs under.
//
// N operations ("slots") are kept in flight. Each one is a 4 KiB durable
// write: the model's `submit` starts it and the model calls `op::done` once
// it is durable (any thread, possibly inside `submit`). The completion
// callback re-issues the slot at once, so every model sees the same number of
// requests in flight and the same completion delivery (a callback).
#pragma once

#include <flushkit/core/request.hpp>
#include <flushkit/core/status.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace flushkit::bench {

inline constexpr std::size_t block_size = 4096;

class harness;

/// One in-flight slot: its data block, its request (for request-based
/// models) and its bookkeeping. Owned by the harness; never moved.
struct op {
  /// Called by the model exactly once per `submit`: the write is durable
  /// (success) or failed.
  void done(const status& st) noexcept;

  /// Prepares `req` as a FUA write of `data` at `offset` whose completion
  /// calls `done`.
  void prepare_fua_write() noexcept;

  flushkit::request req;
  flushkit::segment seg{};
  std::uint64_t offset = 0; ///< byte offset of this write (set by the harness)
  std::size_t index = 0;    ///< slot number
  std::uint64_t seq = 0;    ///< writes issued by this slot
  std::chrono::steady_clock::time_point started{};
  bool timed = false;       ///< this write's latencies are sampled
  std::atomic<int> state{0};
  harness* owner = nullptr;
  alignas(block_size) std::array<std::byte, block_size> data{};
};

/// A model instantiated for one run. Construction and destruction are
/// outside the measured window; `submit` is inside it.
class workload {
public:
  virtual ~workload() = default;
  /// Starts one durable write of `o.data` at `o.offset`; `o.done()` follows.
  virtual void submit(op& o) = 0;
  /// flush system calls (fdatasync/fsync/msync, or provider flushes for the
  /// no-op provider) issued so far.
  virtual std::uint64_t flushes() const = 0;
  /// Memory the model's framework keeps per in-flight request, in bytes
  /// (-1: not reported).
  virtual std::int64_t bytes_per_request() const { return -1; }
};

/// Counter of device cache flushes (e.g. /sys/block/<dev>/stat field 16).
using device_flush_reader = std::int64_t (*)(const void* context) noexcept;

struct run_params {
  std::string scenario, model;
  std::size_t inflight = 1;
  double seconds = 1.0;
  double warmup = 0.25;
  std::uint64_t blocks = 256; ///< distinct 4 KiB blocks the slots write to
  bool blocking = false;      ///< submit completes inline: one thread per slot
  /// Latencies are timed for writes whose sequence number has none of these
  /// bits set (0: every write; 15: one in 16, keeping clock reads out of
  /// nanosecond-scale measurements).
  std::uint64_t sample_mask = 0;
  bool progress = false;      ///< live progress line on stderr
  device_flush_reader device_flushes = nullptr;
  const void* device_context = nullptr;
};

struct run_result {
  std::string scenario, model;
  std::size_t inflight = 0;
  std::uint64_t ops = 0;
  std::uint64_t errors = 0;
  double seconds = 0;
  std::uint64_t flushes = 0;
  double allocs_per_op = -1;       ///< -1: counting disabled in this build
  double cpu_us_per_ack = 0;       ///< process CPU time (user + sys, every thread) in the window per ack
  std::int64_t bytes_per_request = -1; ///< workload::bytes_per_request (-1: not reported)
  double device_flushes_per_ack = -1; ///< -1: not available
  double p50_us = 0, p99_us = 0;
  double submit_p50_ns = 0, submit_p99_ns = 0;

  double acks_per_s() const noexcept { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
  double ns_per_op() const noexcept { return ops > 0 ? seconds * 1e9 / static_cast<double>(ops) : 0; }
  double flushes_per_ack() const noexcept {
    return ops > 0 ? static_cast<double>(flushes) / static_cast<double>(ops) : 0;
  }
  /// Acks per flush; -1 when no flush was issued.
  double avg_batch() const noexcept {
    return flushes > 0 ? static_cast<double>(ops) / static_cast<double>(flushes) : -1;
  }
};

/// Runs `w` closed-loop: warm-up, then the measured window, then stops
/// re-issuing and waits for every slot to complete.
run_result run_closed_loop(workload& w, const run_params& p);

} // namespace flushkit::bench
