// demo/report.hpp - what flushkit-demo prints: the header, each phase's title and progress lines, the summary table.
#pragma once

#include "options.hpp"
#include "run_state.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace flushkit::demo {

/// One row of the summary table: what a phase measured and what its check found.
struct phase_result {
  std::string group;            ///< the table section: "storage engine: ...", "virtio-pmem: ..."
  std::string model;            ///< the row's label
  bool baseline = false;        ///< the naive model of its group (the speed-up is against it)
  double seconds = 0;           ///< window: first submission .. last counted completion
  std::uint64_t acks = 0;       ///< writes (appends) completed with success in the window: all that did
  std::uint64_t flushes = 0;    ///< backend flushes (fdatasync or write+fdatasync batches) for those
  std::uint64_t p50_ns = 0, p99_ns = 0; ///< submit -> acknowledgement latency
  std::uint64_t to_verify = 0;  ///< acknowledged writes (appends, or blocks' latest writes) the check covers
  std::uint64_t verified = 0;   ///< those found intact after the reopen
  const char* verified_unit = "appends"; ///< what `to_verify` counts
  std::vector<std::string> problems; ///< every failed check, in words (empty: the phase passed)
};

/// Returns: `fmt` formatted with the arguments, as printf does. Allocation: the string.
[[gnu::format(printf, 1, 2)]] std::string strprintf(const char* fmt, ...);

/// Returns: `n` with thousands separators ("12,345"). Allocation: the string.
std::string grouped(std::uint64_t n);

/// Effects: prints what the run does, where its files are, how long it takes.
void print_header(const demo_options& o, const std::string& dir, const std::string& fs);

/// Effects: prints a phase's title line, "[number/4] title", then `how` (indented; may hold newlines).
void print_phase(int number, const std::string& title, const std::string& how);

/// Effects: prints an indented detail line of the current phase (printf format).
[[gnu::format(printf, 1, 2)]] void print_detail(const char* fmt, ...);

/// Effects: prints one progress line: `t` seconds into the phase, `per_s`
/// acknowledgements per second since the last line, `total` so far,
/// backend `flushes` so far, `in_flight` writes. Flushes stdout (the line
/// shows when stdout is a pipe too).
void print_progress(double t, double per_s, std::uint64_t total, std::uint64_t flushes, std::uint64_t in_flight,
                    const char* unit);

/// Effects: prints the summary table of `rows`, the speed-ups, what the
/// columns mean, and the verdict. Returns: the exit code (0: every phase
/// passed every check, 1 otherwise).
int print_summary(const std::vector<phase_result>& rows, double total_seconds);

/// Returns: a phase's window: from `t0` (taken before the first submission)
/// to the time stamp of its last recorded completion (0 without one).
inline double window_seconds(clock_type::time_point t0, const phase_counters& c) {
  return c.completed.load() == 0 ? 0.0 : std::chrono::duration<double>(c.last_completion - t0).count();
}

/// Effects: the time a phase submits: from `t0` for `seconds`, prints a
/// progress line at the end of every second (and at the end of the time),
/// then sets `c.stop` (writers submit nothing more; what is in flight still
/// completes and is counted). `flushes()` returns the backend flushes so far
/// (called from this thread). Blocks the calling thread for `seconds`.
template <class Flushes>
void run_window(double seconds, clock_type::time_point t0, phase_counters& c, const char* unit, Flushes&& flushes) {
  const auto end = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  auto prev = t0;
  std::uint64_t prev_acks = 0;
  for (int k = 1; prev < end; ++k) {
    std::this_thread::sleep_until(std::min(t0 + std::chrono::seconds(k), end)); // the progress clock
    const auto now = clock_type::now();
    const std::uint64_t failed = c.failed.load(); // this order: see phase_counters::complete
    const std::uint64_t completed = c.completed.load();
    const std::uint64_t in_flight = c.submitted.load() - completed;
    const std::uint64_t acks = completed - failed;
    const double dt = std::chrono::duration<double>(now - prev).count();
    print_progress(std::chrono::duration<double>(now - t0).count(),
                   dt > 0 ? static_cast<double>(acks - prev_acks) / dt : 0.0, acks, flushes(), in_flight, unit);
    prev = now;
    prev_acks = acks;
  }
  c.stop.store(true, std::memory_order_relaxed);
}

} // namespace flushkit::demo
