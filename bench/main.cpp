// bench/main.cpp - flushkit-bench: scenarios, sweeps, and the run loop.
//
// Every model runs under the same durability contract (an ack means the
// 4 KiB write is durable, or, in `overhead`, that the no-op provider's flush
// finished; in the journal scenarios, that the framed log record is durable,
// see models_journal.cpp). See docs/performance.md for the models and how to
// read results, and `flushkit-bench --help` for the columns.
#include "harness.hpp"
#include "model.hpp"
#include "options.hpp"
#include "report.hpp"
#include "system_info.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace fb = flushkit::bench;

namespace {

constexpr std::uint64_t anonymous_bytes = 256 * fb::block_size; // overhead: stays in cache
constexpr std::uint64_t file_bytes = 64u << 20;                  // submit, durable: 16384 blocks
// preallocation: 65536 blocks, so that a run at 64 in flight mostly writes
// blocks of the fresh file that were never written since it was created.
constexpr std::uint64_t fresh_file_bytes = 256u << 20;
// journal scenarios: each file (journal segment, baseline log) holds the
// records of a default-length point (2 s + 0.5 s warm-up) at up to about
// 670k (64 B), 790k (256 B) and 210k (4 KiB) appends/s (the journal reached
// up to about 530k, 420k and 220k at 256 in flight on the 2-CPU test VM: at
// 4 KiB, one rotation into the ready spare near the end of the window).
constexpr double default_point_seconds = 2.5;
constexpr std::uint64_t min_log_bytes = 8u << 20;

struct scenario_info {
  std::string_view name;
  std::vector<std::size_t> sweep;
  bool needs_file;
  std::uint64_t sample_mask;     // see run_params::sample_mask
  std::uint64_t fresh_bytes = 0; // > 0: each model creates a file of this size next to the bench file
  /// > 0: a journal scenario; each point creates a directory next to the
  /// bench file whose files have this size at the default window, scaled
  /// down with a shorter one (see log_bytes_for).
  std::uint64_t log_bytes = 0;
};

const std::vector<scenario_info>& scenarios() {
  static const std::vector<scenario_info> all = {
      {"overhead", {1, 16, 64}, false, 15},
      {"submit", {1, 16}, true, 0},
      {"durable", {1, 4, 16, 64, 256, 1024}, true, 0},
      {"virtio", {1, 16, 64}, true, 0},
      {"preallocation", {1, 64}, true, 0, fresh_file_bytes},
      {"journal-64", {1, 16, 64, 256}, true, 0, 0, std::uint64_t{128} << 20},
      {"journal-256", {1, 16, 64, 256}, true, 0, 0, std::uint64_t{512} << 20},
      {"journal-4k", {1, 16, 64, 256}, true, 0, 0, std::uint64_t{2048} << 20},
  };
  return all;
}

/// The journal scenarios' file size: `sc.log_bytes` for a point of the
/// default length or longer, proportionally less for a shorter one (so the
/// smoke test does not zero-fill gigabytes), at least min_log_bytes, in
/// whole MiB.
std::uint64_t log_bytes_for(const scenario_info& sc, const fb::options& o) {
  const double scale = std::min(1.0, (o.seconds + o.warmup) / default_point_seconds);
  const auto bytes = static_cast<std::uint64_t>(static_cast<double>(sc.log_bytes) * scale);
  const std::uint64_t mib = std::uint64_t{1} << 20;
  return std::max(min_log_bytes, (bytes + mib - 1) / mib * mib);
}

/// Whether `--scenario` selected `sc` ("journal" selects every journal scenario).
bool selected(const scenario_info& sc, const fb::options& o) {
  return o.scenario == "all" || o.scenario == sc.name || (o.scenario == "journal" && sc.log_bytes > 0);
}

/// The bench file, created the first time a scenario needs it.
class medium_source {
public:
  explicit medium_source(const fb::options& o) : requested_(o.file) {}
  const fb::bench_file& file() {
    if (!file_) file_ = std::make_unique<fb::bench_file>(requested_, file_bytes);
    return *file_;
  }

private:
  std::string requested_;
  std::unique_ptr<fb::bench_file> file_;
};

std::vector<std::size_t> sweep_for(const fb::model_info& m, const scenario_info& s, const fb::options& o) {
  std::vector<std::size_t> points = o.inflight.empty() ? s.sweep : o.inflight;
  if (m.max_inflight != 0)
    for (std::size_t& n : points) n = std::min(n, m.max_inflight);
  points.erase(std::unique(points.begin(), points.end()), points.end());
  return points;
}

struct scenario_run {
  const scenario_info& scenario;
  const fb::options& opts;
  const fb::reporter& out;
  fb::run_context ctx;
  fb::bench_env env;
  std::unique_ptr<fb::device_flush_counter> device;
  int failures = 0;
};

void run_point(scenario_run& s, const fb::model_info& m, std::size_t inflight) {
  s.env.inflight = inflight;
  fb::run_params p;
  p.scenario = std::string(s.scenario.name);
  p.model = std::string(m.name);
  p.inflight = inflight;
  p.seconds = s.opts.seconds;
  p.warmup = s.opts.warmup;
  p.blocks = s.env.medium_bytes / fb::block_size;
  p.blocking = m.blocking;
  p.sample_mask = s.scenario.sample_mask;
  p.progress = ::isatty(STDERR_FILENO) != 0;
  if (s.device && s.device->available()) {
    p.device_flushes = &fb::device_flush_counter::read_fn;
    p.device_context = s.device.get();
  }
  std::unique_ptr<fb::workload> w = m.make(s.env);
  const fb::run_result r = fb::run_closed_loop(*w, p);
  w.reset(); // joins the model's threads before the result is printed
  if (r.errors != 0) ++s.failures;
  s.out.result(r, s.ctx);
}

void run_model(scenario_run& s, const fb::model_info& m) {
  if (m.unavailable != nullptr)
    if (const char* why = m.unavailable()) return s.out.skipped(s.scenario.name, m.name, why, s.ctx);
  for (const std::size_t n : sweep_for(m, s.scenario, s.opts)) {
    try {
      run_point(s, m, n);
    } catch (const std::exception& e) {
      s.out.skipped(s.scenario.name, m.name, e.what(), s.ctx);
      ++s.failures;
      return;
    }
  }
}

int run_scenario(const scenario_info& sc, const fb::options& o, const fb::model_registry& reg, medium_source& media,
                 const fb::reporter& out, const fb::machine_info& machine) {
  std::vector<const fb::model_info*> models;
  for (const fb::model_info& m : reg)
    if (m.scenario == sc.name) models.push_back(&m);
  if (models.empty()) {
    std::fprintf(o.json ? stderr : stdout, "%s%.*s models: not built yet\n", o.json ? "" : "\n",
                 static_cast<int>(sc.name.size()), sc.name.data());
    return 0;
  }
  scenario_run s{sc, o, out, {}, {}, nullptr};
  s.ctx.machine = machine;
  s.env.medium_bytes = anonymous_bytes;
  if (sc.needs_file) {
    const fb::bench_file& f = media.file();
    s.env.file_path = s.ctx.file = f.path();
    if (sc.fresh_bytes > 0) s.ctx.file += std::string(fb::fresh_file_suffix) + ", created per point";
    s.env.medium_bytes = sc.fresh_bytes > 0 ? sc.fresh_bytes : f.size();
    if (sc.log_bytes > 0) {
      s.env.medium_bytes = log_bytes_for(sc, o);
      s.ctx.file += ".journal/, created per point, files of " + std::to_string(s.env.medium_bytes >> 20) + " MiB";
    }
    s.ctx.fs_type = fb::fs_type_of(f.path());
    s.device = std::make_unique<fb::device_flush_counter>(f.path());
  }
  out.scenario(sc.name, s.ctx);
  for (const fb::model_info* m : models) run_model(s, *m);
  return s.failures;
}

void list_models(const fb::model_registry& reg) {
  for (const fb::model_info& m : reg)
    std::printf("%.*s %.*s\n", static_cast<int>(m.scenario.size()), m.scenario.data(), static_cast<int>(m.name.size()),
                m.name.data());
}

} // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  auto opts = fb::parse_options(argc, argv, exit_code);
  if (!opts) return exit_code;
  if (opts->list_models) {
    list_models(fb::all_models());
    return 0;
  }
  try {
    const fb::reporter out(stdout, opts->json);
    const fb::machine_info machine = fb::describe_machine();
    out.machine(machine);
    const fb::model_registry reg = fb::all_models();
    medium_source media(*opts);
    int failures = 0;
    for (const scenario_info& sc : scenarios())
      if (selected(sc, *opts)) failures += run_scenario(sc, *opts, reg, media, out, machine);
    return failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flushkit-bench: %s\n", e.what());
    return 1;
  }
}
