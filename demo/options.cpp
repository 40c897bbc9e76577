// demo/options.cpp - command line of flushkit-demo.
#include "options.hpp"

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace flushkit::demo {

namespace {

constexpr const char* usage =
    "usage: flushkit-demo [--seconds S] [--writers N] [--file PATH] [--keep] [--no-coalesce] [--two-process]\n"
    "\n"
    "Durable 4 KiB FUA writes from N coroutines through a virtio-pmem guest driver\n"
    "(pmem_guest) to a virtio-pmem host device (pmem_host) that flushes a file with\n"
    "fdatasync; then the file is reopened and every acknowledged write is checked.\n"
    "\n"
    "  --seconds S     length of the write phase (default 5, at most 3600)\n"
    "  --writers N     concurrent writers, one write in flight each (default 64, 1..4096)\n"
    "  --file PATH     the pmem file to create (must not exist; default: a temporary\n"
    "                  file in $TMPDIR or /var/tmp)\n"
    "  --keep          keep the file afterwards (default: removed)\n"
    "  --no-coalesce   one host flush per write (default: group commit)\n"
    "  --two-process   run the host device in a forked child (memfd + eventfds)\n";

bool parse_seconds(const char* s, double& out) {
  char* end = nullptr;
  out = std::strtod(s, &end);
  return end != s && *end == '\0' && out > 0 && out <= 3600;
}

bool parse_writers(const char* s, unsigned& out) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(s, &end, 10);
  out = static_cast<unsigned>(v);
  return end != s && *end == '\0' && v >= 1 && v <= 4096;
}

// Handles one option that takes a value; false on a bad or missing value.
bool parse_valued(std::string_view opt, const char* value, demo_options& o) {
  if (value == nullptr) return false;
  if (opt == "--seconds") return parse_seconds(value, o.seconds);
  if (opt == "--writers") return parse_writers(value, o.writers);
  o.file = value; // --file
  return !o.file.empty();
}

bool parse_flag(std::string_view opt, demo_options& o) {
  if (opt == "--keep")
    o.keep = true;
  else if (opt == "--no-coalesce")
    o.coalesce = false;
  else if (opt == "--two-process")
    o.two_process = true;
  else
    return false;
  return true;
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
    const bool valued = opt == "--seconds" || opt == "--writers" || opt == "--file";
    const bool ok = valued ? parse_valued(opt, i + 1 < argc ? argv[++i] : nullptr, o) : parse_flag(opt, o);
    if (!ok) {
      std::fprintf(stderr, "flushkit-demo: bad option or value: %s\n\n%s", argv[i], usage);
      exit_code = 2;
      return std::nullopt;
    }
  }
  return o;
}

} // namespace flushkit::demo
