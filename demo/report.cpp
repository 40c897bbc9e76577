// demo/report.cpp - what flushkit-demo prints: the header, each phase's title and progress lines, the summary table.
#include "report.hpp"

#include <cstdarg>
#include <cstdio>

namespace flushkit::demo {

namespace {

double ms(std::uint64_t ns) { return static_cast<double>(ns) / 1e6; }

double per_second(const phase_result& r) { return r.seconds > 0 ? static_cast<double>(r.acks) / r.seconds : 0.0; }
double flushes_per_ack(const phase_result& r) {
  return r.acks == 0 ? 0.0 : static_cast<double>(r.flushes) / static_cast<double>(r.acks);
}

constexpr const char* row_format = "  %-32s %9s %7s %9s %7s %7s %11s  %s\n";

void print_row(const phase_result& r) {
  const std::string verified = grouped(r.verified) + " of " + grouped(r.to_verify) + " " + r.verified_unit;
  std::printf(row_format, r.model.c_str(), grouped(r.acks).c_str(), strprintf("%.2f s", r.seconds).c_str(),
              grouped(static_cast<std::uint64_t>(per_second(r) + 0.5)).c_str(), strprintf("%.2f", ms(r.p50_ns)).c_str(),
              strprintf("%.2f", ms(r.p99_ns)).c_str(), strprintf("%.4f", flushes_per_ack(r)).c_str(),
              verified.c_str());
}

// For each group with a model and its baseline: how much more the model acknowledged per second, and with how
// many fewer flushes.
void print_speedups(const std::vector<phase_result>& rows) {
  for (const phase_result& b : rows) {
    if (!b.baseline) continue;
    for (const phase_result& r : rows) {
      if (r.baseline || r.group != b.group || per_second(b) <= 0) continue;
      std::printf("  %s: %.1fx the acks/s of %s; flushes/ack %.4f vs %.4f\n", r.model.c_str(),
                  per_second(r) / per_second(b), b.model.c_str(), flushes_per_ack(r), flushes_per_ack(b));
    }
  }
}

} // namespace

std::string strprintf(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list again;
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, fmt, args);
  va_end(args);
  std::string out(n > 0 ? static_cast<std::size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, again);
  va_end(again);
  return out;
}

std::string grouped(std::uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void print_header(const demo_options& o, const std::string& dir, const std::string& fs) {
  std::printf("flushkit demo: durable writes the two ways flushkit offers, each against its naive baseline\n");
  std::printf("  1. storage engine: flushkit::journal (write-ahead log, group commit)\n"
              "     vs pwrite + fdatasync per append\n");
  std::printf("  2. virtio-pmem: FUA writes through pmem_guest -> pmem_host with group commit\n"
              "     vs one host flush per write\n");
  std::printf("files: %s (%s), %s\n", dir.c_str(), fs.c_str(),
              o.keep ? "kept afterwards (--keep)" : "removed at the end (--keep keeps them)");
  std::printf("each phase: %.1f s of submissions with %u concurrent appenders/writers, then the in-flight ones\n"
              "complete; a progress line every second; then the files are reopened and checked\n\n",
              o.seconds, o.writers);
  std::fflush(stdout);
}

void print_phase(int number, const std::string& title, const std::string& how) {
  std::printf("[%d/4] %s\n", number, title.c_str());
  std::size_t at = 0;
  while (at < how.size()) {
    const std::size_t nl = how.find('\n', at);
    const std::size_t end = nl == std::string::npos ? how.size() : nl;
    std::printf("      %.*s\n", static_cast<int>(end - at), how.c_str() + at);
    at = end + 1;
  }
  std::fflush(stdout);
}

void print_detail(const char* fmt, ...) {
  std::fputs("      ", stdout);
  va_list args;
  va_start(args, fmt);
  std::vprintf(fmt, args);
  va_end(args);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void print_progress(double t, double per_s, std::uint64_t total, std::uint64_t flushes, std::uint64_t in_flight,
                    const char* unit) {
  std::printf("  %5.1f s %10s %s/s %12s %s %10s flushes %5llu in flight\n", t,
              grouped(static_cast<std::uint64_t>(per_s + 0.5)).c_str(), unit, grouped(total).c_str(), unit,
              grouped(flushes).c_str(), static_cast<unsigned long long>(in_flight));
  std::fflush(stdout);
}

int print_summary(const std::vector<phase_result>& rows, double total_seconds) {
  std::printf("\nsummary\n");
  std::printf(row_format, "model", "acks", "window", "acks/s", "p50 ms", "p99 ms", "flushes/ack",
              "verified after reopen");
  const std::string* group = nullptr;
  for (const phase_result& r : rows) {
    if (group == nullptr || *group != r.group) std::printf("%s\n", r.group.c_str());
    group = &r.group;
    print_row(r);
  }
  std::printf("\n");
  print_speedups(rows);
  std::printf("\n"
              "  acks: writes (appends) acknowledged durable, every one that completed in its window; window: from\n"
              "    before the first submission to the last acknowledgement; acks/s = acks / window.\n"
              "  p50/p99: submit -> durable acknowledgement as each appender/writer sees it, with all of them in\n"
              "    flight (the pwrite + fdatasync baseline's includes the wait for its one I/O thread).\n"
              "  flushes/ack: journal: write + fdatasync batches; its baseline: fdatasync calls; virtio: the\n"
              "    host's fdatasync calls.\n"
              "  verified after reopen: logs closed and reopened, every acknowledged LSN read back (journal_reader)\n"
              "    and compared byte for byte with the payload appended for it; pmem files unmapped, reopened and\n"
              "    each block compared (pread) with its latest acknowledged write. Reads see the page cache:\n"
              "    this checks that what was acknowledged is in the files, not survival of a power cut.\n\n");
  bool ok = true;
  for (const phase_result& r : rows)
    for (const std::string& p : r.problems) {
      std::printf("FAILED: %s: %s\n", r.model.c_str(), p.c_str());
      ok = false;
    }
  std::printf("%s (%.1f s in all)\n", ok ? "every check passed" : "FAILED", total_seconds);
  std::fflush(stdout);
  return ok ? 0 : 1;
}

} // namespace flushkit::demo
