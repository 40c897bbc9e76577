// demo/options.hpp - command line of flushkit-demo.
#pragma once

#include <optional>
#include <string>

namespace flushkit::demo {

struct demo_options {
  double seconds = 5.0;     ///< --seconds S: length of the write phase
  unsigned writers = 64;    ///< --writers N: concurrent coroutine writers (one FUA write in flight each)
  std::string file;         ///< --file PATH: the pmem file (default: a temporary file)
  bool keep = false;        ///< --keep: leave the file in place
  bool coalesce = true;     ///< --no-coalesce: one host flush per FUA write
  bool two_process = false; ///< --two-process: the host runs in a forked child
};

/// Parses argv. Returns nullopt when the program should exit with `exit_code`
/// (0 after --help, 2 after a usage error, reported on stderr).
std::optional<demo_options> parse_options(int argc, char** argv, int& exit_code);

} // namespace flushkit::demo
