// demo/report.cpp - what flushkit-demo prints, and the verification that reads the file back.
#include "report.hpp"

#include <array>
#include <cstdio>

#include <fcntl.h>
#include <unistd.h>

namespace flushkit::demo {

namespace {

double per(std::uint64_t a, std::uint64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); }
double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

bool block_matches(int fd, std::uint64_t block, std::uint32_t writer, std::uint64_t seq) {
  alignas(64) std::array<std::byte, block_bytes> want, got;
  fill_pattern(want, writer, seq);
  const auto off = static_cast<off_t>(block * block_bytes);
  return ::pread(fd, got.data(), got.size(), off) == static_cast<ssize_t>(got.size()) && got == want;
}

} // namespace

void print_header(const demo_options& o, const std::string& path, const std::string& fs, std::uint64_t bytes) {
  std::printf("flushkit demo: virtio-pmem guest driver -> host device (%s), fdatasync on the host, group commit %s\n",
              o.two_process ? "two processes: memfd + eventfds" : "in-process transport",
              o.coalesce ? "on" : "off (--no-coalesce)");
  std::printf("pmem file: %s (%s), %llu KiB%s\n", path.c_str(), fs.c_str(),
              static_cast<unsigned long long>(bytes / 1024), o.keep ? ", kept afterwards" : "");
  std::printf("workload: %u writers x 4 KiB FUA writes, one in flight each, for %.1f s\n\n", o.writers, o.seconds);
  std::fflush(stdout);
}

bool progress_enabled() { return ::isatty(STDOUT_FILENO) != 0; }

void print_progress(double t, double acks_per_s, std::uint64_t host_flushes, std::uint64_t in_flight) {
  std::printf("\r  %5.1f s  %10.0f acks/s  %9llu host flushes  %5llu in flight", t, acks_per_s,
              static_cast<unsigned long long>(host_flushes), static_cast<unsigned long long>(in_flight));
  std::fflush(stdout);
}

void end_progress() {
  std::fputs("\r\033[K", stdout);
  std::fflush(stdout);
}

verification verify_file(const std::string& path, const run_state& rs) {
  verification v;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return v;
  v.opened = true;
  for (std::uint64_t b = 0; b < rs.blocks(); ++b) {
    const std::uint64_t latest = rs.latest[b];
    if (latest == 0 || latest == run_state::unknown) continue;
    ++v.checked;
    if (!block_matches(fd, b, static_cast<std::uint32_t>(b / blocks_per_writer), latest - 1)) ++v.failures;
  }
  ::close(fd);
  return v;
}

int print_summary(const phase_result& r, const run_state& rs, const verification& v) {
  std::printf("acks:            %llu in %.2f s = %.0f acks/s (%llu errors)\n", static_cast<unsigned long long>(r.acks),
              r.seconds, r.seconds > 0 ? static_cast<double>(r.acks) / r.seconds : 0.0,
              static_cast<unsigned long long>(r.errors));
  std::printf("host flushes:    %llu fdatasync for %llu requests = %.4f flushes per ack (%llu failed, %llu malformed)\n",
              static_cast<unsigned long long>(r.host_flushes), static_cast<unsigned long long>(r.host_requests),
              per(r.host_flushes, r.acks), static_cast<unsigned long long>(r.host_failures),
              static_cast<unsigned long long>(r.host_malformed));
  std::printf("latency:         submit -> ack p50 %.1f us, p99 %.1f us\n", us(rs.latency.percentile(0.50)),
              us(rs.latency.percentile(0.99)));
  if (!v.opened) std::printf("verification: the file could not be reopened\n");
  std::printf("verification: %llu acknowledged writes checked, %llu failures\n",
              static_cast<unsigned long long>(v.checked), static_cast<unsigned long long>(v.failures));
  std::printf("  (file reopened with pread; the latest acknowledged write of each of %llu blocks)\n",
              static_cast<unsigned long long>(rs.blocks()));
  const bool ok = v.opened && v.failures == 0 && r.errors == 0 && r.host_malformed == 0 && r.host_exit == 0;
  if (!ok) std::printf("FAILED\n");
  return ok ? 0 : 1;
}

} // namespace flushkit::demo
