// bench/report.cpp - JSON lines and the human-readable table.
#include "report.hpp"

namespace flushkit::bench {

namespace {

// JSON string contents: the strings here come from uname, /proc and paths.
std::string escaped(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

// A number, or null for "not measured" (negative).
std::string number_or_null(double v) {
  if (v < 0) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// A byte count, or null for "not reported" (negative).
std::string bytes_or_null(std::int64_t v) { return v < 0 ? "null" : std::to_string(v); }

} // namespace

void reporter::machine(const machine_info& m) const {
  if (json_) return;
  std::fprintf(out_, "flushkit-bench: kernel %s, %u CPUs (%s), build %s\n", m.kernel.c_str(), m.nproc, m.cpu.c_str(),
               m.build.c_str());
}

void reporter::scenario(std::string_view name, const run_context& ctx) const {
  if (json_) return;
  std::fprintf(out_, "\n== %.*s  (medium: %s, fs %s)\n", static_cast<int>(name.size()), name.data(),
               ctx.file.empty() ? "anonymous memory" : ctx.file.c_str(), ctx.fs_type.c_str());
  std::fprintf(out_, "%-28s %8s %12s %10s %10s %9s %9s %10s %10s %11s %10s %9s %6s\n", "model", "inflight", "acks/s",
               "ns/op", "flush/ack", "dev/ack", "allocs/op", "p50 us", "p99 us", "submit p50", "cpu us/ack",
               "avg batch", "B/req");
}

void reporter::result(const run_result& r, const run_context& ctx) const {
  if (json_)
    json_line(r, ctx);
  else
    table_row(r);
  std::fflush(out_);
}

void reporter::json_line(const run_result& r, const run_context& ctx) const {
  std::fprintf(out_,
               "{\"scenario\":\"%s\",\"model\":\"%s\",\"inflight\":%zu,\"ops\":%llu,\"errors\":%llu,"
               "\"seconds\":%.4f,\"acks_per_s\":%.1f,\"ns_per_op\":%.1f,\"flushes\":%llu,"
               "\"flushes_per_ack\":%.4f,\"device_flushes_per_ack\":%s,\"allocs_per_op\":%s,"
               "\"p50_us\":%.3f,\"p99_us\":%.3f,\"submit_p50_ns\":%.0f,\"submit_p99_ns\":%.0f,"
               "\"cpu_us_per_ack\":%.3f,\"avg_batch\":%s,\"bytes_per_request\":%s,"
               "\"kernel\":\"%s\",\"fs_type\":\"%s\",\"nproc\":%u,\"build\":\"%s\"}\n",
               r.scenario.c_str(), r.model.c_str(), r.inflight, static_cast<unsigned long long>(r.ops),
               static_cast<unsigned long long>(r.errors), r.seconds, r.acks_per_s(), r.ns_per_op(),
               static_cast<unsigned long long>(r.flushes), r.flushes_per_ack(),
               number_or_null(r.device_flushes_per_ack).c_str(), number_or_null(r.allocs_per_op).c_str(), r.p50_us,
               r.p99_us, r.submit_p50_ns, r.submit_p99_ns, r.cpu_us_per_ack, number_or_null(r.avg_batch()).c_str(),
               bytes_or_null(r.bytes_per_request).c_str(), escaped(ctx.machine.kernel).c_str(),
               escaped(ctx.fs_type).c_str(), ctx.machine.nproc, escaped(ctx.machine.build).c_str());
}

void reporter::table_row(const run_result& r) const {
  std::fprintf(out_, "%-28s %8zu %12.0f %10.1f %10.4f %9s %9s %10.2f %10.2f %11.0f %10.2f %9s %6s%s\n",
               r.model.c_str(), r.inflight, r.acks_per_s(), r.ns_per_op(), r.flushes_per_ack(),
               number_or_null(r.device_flushes_per_ack).c_str(), number_or_null(r.allocs_per_op).c_str(), r.p50_us,
               r.p99_us, r.submit_p50_ns, r.cpu_us_per_ack, number_or_null(r.avg_batch()).c_str(),
               bytes_or_null(r.bytes_per_request).c_str(), r.errors != 0 ? "  ERRORS" : "");
}

void reporter::skipped(std::string_view scenario, std::string_view model, std::string_view why,
                       const run_context& ctx) const {
  if (json_)
    std::fprintf(out_,
                 "{\"scenario\":\"%s\",\"model\":\"%s\",\"skipped\":\"%s\",\"kernel\":\"%s\",\"fs_type\":\"%s\","
                 "\"nproc\":%u,\"build\":\"%s\"}\n",
                 escaped(scenario).c_str(), escaped(model).c_str(), escaped(why).c_str(),
                 escaped(ctx.machine.kernel).c_str(), escaped(ctx.fs_type).c_str(), ctx.machine.nproc,
                 escaped(ctx.machine.build).c_str());
  else
    std::fprintf(out_, "%.*s: %.*s: skipped: %.*s\n", static_cast<int>(scenario.size()), scenario.data(),
                 static_cast<int>(model.size()), model.data(), static_cast<int>(why.size()), why.data());
  std::fflush(out_);
}

} // namespace flushkit::bench
