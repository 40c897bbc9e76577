// demo/report.hpp - what flushkit-demo prints, and the verification that reads the file back.
#pragma once

#include "options.hpp"
#include "run_state.hpp"

#include <cstdint>
#include <string>

namespace flushkit::demo {

/// What the write phase measured.
struct phase_result {
  double seconds = 0;
  std::uint64_t acks = 0, errors = 0;
  std::uint64_t host_requests = 0, host_flushes = 0, host_failures = 0, host_malformed = 0;
  int host_exit = 0; ///< exit status of the host process (two-process mode)
};

/// Outcome of reading the file back.
struct verification {
  std::uint64_t checked = 0, failures = 0;
  bool opened = false;
};

void print_header(const demo_options& o, const std::string& path, const std::string& fs, std::uint64_t bytes);

/// True when stdout is a terminal (the progress line is shown).
bool progress_enabled();
/// Rewrites the progress line (no allocation).
void print_progress(double t, double acks_per_s, std::uint64_t host_flushes, std::uint64_t in_flight);
/// Erases the progress line.
void end_progress();

/// Reopens `path` and compares, with pread, each block's latest acknowledged
/// write against its pattern.
verification verify_file(const std::string& path, const run_state& rs);

/// Prints the summary; returns the exit code (0: no error, nothing wrong on disk).
int print_summary(const phase_result& r, const run_state& rs, const verification& v);

} // namespace flushkit::demo
