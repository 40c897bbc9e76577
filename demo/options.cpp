// demo/options.cpp - command line of flushkit-demo.
#include "options.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace flushkit::demo {

namespace {

constexpr const char* usage =
    "usage: flushkit-demo [--seconds S] [--writers N] [--record-bytes B] [--dir PATH] [--keep] [--two-process]\n"
    "\n"
    "Shows in one run the two things flushkit is for, each against its naive baseline:\n"
    "  1. storage engine: flushkit::journal, a write-ahead log with group commit, with N\n"
    "     coroutine appenders on one io_context, against pwrite + fdatasync per append\n"
    "     (one append at a time);\n"
    "  2. virtio-pmem: N coroutine writers doing 4 KiB FUA writes through the guest\n"
    "     driver (pmem_guest) to the host device (pmem_host, fdatasync on the host), with\n"
    "     group commit (coalescer) against one host flush per write.\n"
    "Each of the four phases runs S seconds and prints a progress line every second.\n"
    "After each, its files are closed and reopened and every acknowledged write is\n"
    "checked (the journal runs recovery first). A summary table ends the run.\n"
    "Exit status: 0 when every check passed, 1 when one failed, 2 for a usage error.\n"
    "\n"
    "  --seconds S       length of each phase (default 3; 0 < S <= 3600)\n"
    "  --writers N       concurrent appenders / writers in every phase (default 64, 1..4096)\n"
    "  --record-bytes B  payload bytes of each journal record (default 256, 16..65536)\n"
    "  --dir PATH        directory for the files, created by the demo (must not exist;\n"
    "                    default: a new temporary directory in $TMPDIR or /var/tmp)\n"
    "  --keep            keep the directory afterwards (default: removed)\n"
    "  --two-process     virtio phases: run the host device in a forked child\n"
    "                    (memfd + eventfds) instead of in this process\n"
    "  -h, --help        this text\n";

bool parse_seconds(const char* s, double& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s, &end);
  return errno == 0 && end != s && *end == '\0' && std::isfinite(out) && out > 0 && out <= 3600;
}

bool parse_count(const char* s, unsigned long lo, unsigned long hi, unsigned long& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtoul(s, &end, 10);
  return errno == 0 && *s >= '0' && *s <= '9' && *end == '\0' && out >= lo && out <= hi;
}

/// Returns: what is wrong with `value` for the valued option `opt`, or nullptr when it was taken.
const char* parse_valued(std::string_view opt, const char* value, demo_options& o) {
  unsigned long n = 0;
  if (opt == "--seconds") return parse_seconds(value, o.seconds) ? nullptr : "a number of seconds in (0, 3600]";
  if (opt == "--writers") {
    if (!parse_count(value, 1, 4096, n)) return "a whole number in 1..4096";
    o.writers = static_cast<unsigned>(n);
    return nullptr;
  }
  if (opt == "--record-bytes") {
    if (!parse_count(value, 16, 65536, n)) return "a whole number of bytes in 16..65536";
    o.record_bytes = n;
    return nullptr;
  }
  o.dir = value; // --dir
  return o.dir.empty() ? "a path" : nullptr;
}

bool parse_flag(std::string_view opt, demo_options& o) {
  if (opt == "--keep")
    o.keep = true;
  else if (opt == "--two-process")
    o.two_process = true;
  else
    return false;
  return true;
}

bool is_valued(std::string_view opt) {
  return opt == "--seconds" || opt == "--writers" || opt == "--record-bytes" || opt == "--dir";
}

std::nullopt_t usage_error(int& exit_code) {
  std::fprintf(stderr, "\n%s", usage);
  exit_code = 2;
  return std::nullopt;
}

} // namespace

std::optional<demo_options> parse_options(int argc, char** argv, int& exit_code) {
  demo_options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view opt = argv[i];
    if (opt == "--help" || opt == "-h") {
      std::fputs(usage, stdout);
      exit_code = 0;
      return std::nullopt;
    }
    if (is_valued(opt)) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "flushkit-demo: %s needs a value\n", argv[i]);
        return usage_error(exit_code);
      }
      const char* value = argv[++i];
      if (const char* want = parse_valued(opt, value, o)) {
        std::fprintf(stderr, "flushkit-demo: %s %s: expected %s\n", argv[i - 1], value, want);
        return usage_error(exit_code);
      }
    } else if (!parse_flag(opt, o)) {
      std::fprintf(stderr, "flushkit-demo: unknown option: %s\n", argv[i]);
      return usage_error(exit_code);
    }
  }
  return o;
}

} // namespace flushkit::demo
