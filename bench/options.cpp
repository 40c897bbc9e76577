// bench/options.cpp - command line parsing.
#include "options.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace flushkit::bench {

namespace {

constexpr const char* usage_text =
    "usage: flushkit-bench [--scenario NAME] [--inflight N[,N...]] [--seconds S]\n"
    "                      [--file PATH] [--json] [--quick] [--list-models]\n"
    "\n"
    "  --scenario NAME  overhead | submit | durable | virtio | preallocation |\n"
    "                   journal-64 | journal-256 | journal-4k | journal (the three) | all\n"
    "                   (default all)\n"
    "  --inflight N     in-flight requests, 1..4096; a comma list is a sweep (default:\n"
    "                   overhead 1,16,64; submit 1,16; durable 1,4,16,64,256,1024;\n"
    "                   virtio 1,16,64; preallocation 1,64; journal-* 1,16,64,256)\n"
    "  --seconds S      measured seconds per point (default 2; warm-up S/4, at most 0.5 s)\n"
    "  --file PATH      bench file for the file scenarios (default: a temporary file in\n"
    "                   the current directory, else $TMPDIR or /tmp); preallocation\n"
    "                   creates PATH.prealloc per point and removes it; the journal\n"
    "                   scenarios (durable appends of framed 64 B / 256 B / 4 KiB\n"
    "                   records: journal, group-commit-pwrite, io_uring-batch) use a\n"
    "                   directory PATH.journal per point\n"
    "  --json           one JSON object per line on stdout: a result, or a model that\n"
    "                   could not run ({\"scenario\",\"model\",\"skipped\":REASON,...})\n"
    "  --quick          every scenario, 0.3 s per point\n"
    "  --list-models    print \"SCENARIO MODEL\" for every model and exit\n"
    "\n"
    "Columns (JSON key):\n"
    "  acks/s (acks_per_s), ns/op (ns_per_op), flush/ack (flushes_per_ack: flush calls\n"
    "  the model issued per ack), dev/ack (device_flushes_per_ack), allocs/op\n"
    "  (allocs_per_op), p50/p99 us (p50_us, p99_us: submit to ack), submit p50\n"
    "  (submit_p50_ns), and:\n"
    "  cpu us/ack (cpu_us_per_ack)   process CPU time, user + sys of every thread, in\n"
    "                                the measured window per ack\n"
    "  avg batch  (avg_batch)        acks per flush call; null when there was none\n"
    "  B/req      (bytes_per_request) memory the model keeps per in-flight request\n"
    "                                (io_uring: its state and ring entries; blocking\n"
    "                                pwrite: 0); null when the model does not say\n";

bool parse_double(std::string_view s, double& out) {
  const std::string str(s);
  char* end = nullptr;
  out = std::strtod(str.c_str(), &end);
  return end != str.c_str() && *end == '\0' && out > 0;
}

bool parse_list(std::string_view s, std::vector<std::size_t>& out) {
  out.clear();
  while (!s.empty()) {
    const std::size_t comma = std::min(s.find(','), s.size());
    const std::string item(s.substr(0, comma));
    char* end = nullptr;
    const unsigned long long v = std::strtoull(item.c_str(), &end, 10);
    if (end == item.c_str() || *end != '\0' || v == 0 || v > 4096) return false;
    out.push_back(static_cast<std::size_t>(v));
    s.remove_prefix(std::min(comma + 1, s.size()));
  }
  return !out.empty();
}

bool known_scenario(std::string_view s) {
  return s == "overhead" || s == "submit" || s == "durable" || s == "virtio" || s == "preallocation" ||
         s == "journal" || s == "journal-64" || s == "journal-256" || s == "journal-4k" || s == "all";
}

} // namespace

std::optional<options> parse_options(int argc, char** argv, int& exit_code) {
  options o;
  bool seconds_given = false;
  auto fail = [&](const char* what, std::string_view arg) {
    std::fprintf(stderr, "flushkit-bench: %s: '%.*s'\n%s", what, static_cast<int>(arg.size()), arg.data(), usage_text);
    exit_code = 2;
    return std::nullopt;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--help" || a == "-h") {
      std::fputs(usage_text, stdout);
      exit_code = 0;
      return std::nullopt;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--list-models") {
      o.list_models = true;
    } else if (!has_value) {
      return fail("unknown option or missing value", a);
    } else if (a == "--scenario") {
      o.scenario = argv[++i];
      if (!known_scenario(o.scenario)) return fail("unknown scenario", o.scenario);
    } else if (a == "--inflight") {
      if (!parse_list(argv[++i], o.inflight)) return fail("bad --inflight (1..4096, comma separated)", argv[i]);
    } else if (a == "--seconds") {
      if (!parse_double(argv[++i], o.seconds)) return fail("bad --seconds", argv[i]);
      seconds_given = true;
    } else if (a == "--file") {
      o.file = argv[++i];
    } else {
      return fail("unknown option", a);
    }
  }
  if (o.quick && !seconds_given) o.seconds = 0.3;
  o.warmup = std::clamp(o.seconds / 4, 0.05, 0.5);
  return o;
}

} // namespace flushkit::bench
