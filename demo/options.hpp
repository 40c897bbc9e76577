// demo/options.hpp - command line of flushkit-demo.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace flushkit::demo {

/// What the command line asked for.
struct demo_options {
  double seconds = 3.0;           ///< --seconds S: length of each of the four phases
  unsigned writers = 64;          ///< --writers N: concurrent appenders / writers in every phase
  std::size_t record_bytes = 256; ///< --record-bytes B: payload of each journal record
  std::string dir;                ///< --dir PATH: directory for the files (default: a temporary one)
  bool keep = false;              ///< --keep: leave the directory in place
  bool two_process = false;       ///< --two-process: the virtio host runs in a forked child
};

/// Returns: the options in argv, or nullopt when the program should exit
/// with `exit_code`: 0 after --help (usage on stdout), 2 after a usage
/// error (what was wrong, then the usage, on stderr).
std::optional<demo_options> parse_options(int argc, char** argv, int& exit_code);

} // namespace flushkit::demo
