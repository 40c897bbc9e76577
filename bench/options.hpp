// bench/options.hpp - command line of flushkit-bench.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace flushkit::bench {

struct options {
  std::string scenario = "all";       ///< overhead, submit, durable, virtio, preallocation, all
  std::vector<std::size_t> inflight;  ///< empty: the scenario's sweep
  double seconds = 2.0;               ///< measured window per point
  double warmup = 0.5;                ///< discarded before each window
  std::string file;                   ///< bench file; empty: a temporary one
  bool json = false;
  bool quick = false;
  bool list_models = false;           ///< print "scenario model" per registered model and exit
};

/// Parses argv. Returns nullopt after printing usage (for --help, exit 0)
/// or an error (exit 2); `exit_code` says which.
std::optional<options> parse_options(int argc, char** argv, int& exit_code);

} // namespace flushkit::bench
