// demo/main.cpp - flushkit-demo: many coroutine writers, durable FUA writes through virtio-pmem, verified on disk.
//
// Wiring: file backing -> pmem_host (fdatasync on a thread pool) <-ring-> pmem_guest
// -> coalescer (group commit) -> region -> pmem_device <- 64 coroutine writers.
#include "demo_file.hpp"
#include "options.hpp"
#include "report.hpp"
#include "run_state.hpp"
#include "virtio_topology.hpp"
#include "workload.hpp"

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <latch>
#include <span>
#include <stdexcept>
#include <thread>

namespace fd = flushkit::demo;
namespace pm = flushkit::pmem;
using clock_type = std::chrono::steady_clock;

namespace {

/// pmem_device<region<coalescer<guest&>&>>: group commit in front of the driver.
/// `app` is the writers' event loop: the I/O objects' default executor.
template <class Guest> struct coalesced_device {
  coalesced_device(fd::io_ex app, std::span<std::byte> medium, Guest& g)
      : group(app, g), dev(app, medium, {}, group) {}
  coalesced_device(const coalesced_device&) = delete;
  coalesced_device& operator=(const coalesced_device&) = delete;
  ~coalesced_device() { group.wait_until_idle(); } // the guest's loop may still be delivering
  flushkit::coalescer<Guest&> group;
  pm::pmem_device<flushkit::region<flushkit::coalescer<Guest&>&>> dev;
};

/// pmem_device<region<guest&>>: one host flush per FUA write.
template <class Guest> struct direct_device {
  direct_device(fd::io_ex app, std::span<std::byte> medium, Guest& g) : dev(app, medium, {}, g) {}
  pm::pmem_device<flushkit::region<Guest&>> dev;
};

/// The progress line, refreshed every 200 ms until `seconds` have passed.
template <class Topology>
void show_progress(double seconds, clock_type::time_point t0, const fd::run_state& rs, const Topology& topo) {
  const bool live = fd::progress_enabled();
  const auto end = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  auto tick = t0;
  std::uint64_t last_acks = 0;
  while (tick < end) {
    tick = std::min(tick + std::chrono::milliseconds(200), end);
    std::this_thread::sleep_until(tick); // the progress timer (not synchronisation)
    const std::uint64_t done = rs.completed.load(std::memory_order_relaxed);
    if (live)
      fd::print_progress(std::chrono::duration<double>(tick - t0).count(),
                         static_cast<double>(done - last_acks) / 0.2, topo.host_flushes(),
                         rs.submitted.load(std::memory_order_relaxed) - done);
    last_acks = done;
  }
  if (live) fd::end_progress();
}

/// Runs the writers on `app` for the requested time, then takes the stack
/// down: device (final flush), topology (guest removed, host stopped), `app`.
template <class Topology, class Holder>
fd::phase_result drive(const fd::demo_options& o, fd::loop_thread& app, Topology& topo, Holder& h,
                       fd::run_state& rs) {
  app.start();
  std::latch done(o.writers);
  const auto t0 = clock_type::now();
  fd::spawn_writers(app.io, h.dev, rs, o.writers, done);
  show_progress(o.seconds, t0, rs, topo);
  rs.stop.store(true, std::memory_order_relaxed);
  done.wait(); // every writer has its last write acknowledged
  fd::phase_result r;
  r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  h.dev.remove();
  topo.shutdown();
  app.join();
  r.errors = rs.errors.load();
  r.acks = rs.completed.load() - r.errors;
  return r;
}

template <class Topology> fd::phase_result run_topology(const fd::demo_options& o, const pm::backing& medium, fd::run_state& rs) {
  Topology topo(medium);
  fd::loop_thread app; // the writers' event loop, started by drive()
  fd::phase_result r;
  if (o.coalesce) {
    coalesced_device<typename Topology::guest_t> h(app.executor(), medium.bytes(), topo.guest());
    r = drive(o, app, topo, h, rs);
  } else {
    direct_device<typename Topology::guest_t> h(app.executor(), medium.bytes(), topo.guest());
    r = drive(o, app, topo, h, rs);
  }
  const fd::host_totals t = topo.totals();
  r.host_requests = t.requests;
  r.host_flushes = t.flushes;
  r.host_failures = t.failures;
  r.host_malformed = t.malformed;
  if constexpr (requires { topo.host_exit_status(); }) r.host_exit = topo.host_exit_status();
  return r;
}

int run(const fd::demo_options& o) {
  const fd::demo_file file(o.file, o.keep);
  const std::uint64_t bytes = std::uint64_t{o.writers} * fd::blocks_per_writer * fd::block_bytes;
  fd::print_header(o, file.path(), fd::fs_type_name(file.path()), bytes);
  fd::run_state rs(o.writers);
  fd::phase_result r;
  {
    auto medium = pm::backing::file(file.path().c_str(), {.size = static_cast<std::size_t>(bytes), .create = false});
    if (!medium) throw std::runtime_error(file.path() + ": " + medium.error().message());
    r = o.two_process ? run_topology<fd::two_process_topology>(o, *medium, rs)
                      : run_topology<fd::inproc_topology>(o, *medium, rs);
  } // unmapped and closed: the check below reads the file, not the mapping
  const fd::verification v = fd::verify_file(file.path(), rs);
  return fd::print_summary(r, rs, v);
}

} // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const auto opts = fd::parse_options(argc, argv, exit_code);
  if (!opts) return exit_code;
  try {
    return run(*opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flushkit-demo: %s\n", e.what());
    return 1;
  }
}
