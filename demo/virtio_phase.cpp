// demo/virtio_phase.cpp - the virtio-pmem phases: FUA writes through the guest driver to the host device.
//
// Wiring: file backing -> pmem_host (fdatasync on a thread pool) <-ring-> pmem_guest
// -> [coalescer (group commit)] -> region -> pmem_device <- N coroutine writers.
#include "virtio_phase.hpp"

#include "run_state.hpp"
#include "virtio_topology.hpp"
#include "workload.hpp"

#include <flushkit/coalesce/coalescer.hpp>
#include <flushkit/core/region.hpp>
#include <flushkit/pmem/backing.hpp>
#include <flushkit/pmem/pmem_device.hpp>

#include <array>
#include <cstdio>
#include <latch>
#include <span>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

namespace flushkit::demo {

namespace {

/// pmem_device<region<coalescer<guest&>&>>: group commit in front of the driver.
/// `app` is the writers' event loop: the I/O objects' default executor.
template <class Guest> struct coalesced_device {
  coalesced_device(io_ex app, std::span<std::byte> medium, Guest& g) : group(app, g), dev(app, medium, {}, group) {}
  coalesced_device(const coalesced_device&) = delete;
  coalesced_device& operator=(const coalesced_device&) = delete;
  ~coalesced_device() { group.wait_until_idle(); } // the guest's loop may still be delivering
  flushkit::coalescer<Guest&> group;
  pm::pmem_device<flushkit::region<flushkit::coalescer<Guest&>&>> dev;
};

/// pmem_device<region<guest&>>: one host flush per FUA write.
template <class Guest> struct direct_device {
  direct_device(io_ex app, std::span<std::byte> medium, Guest& g) : dev(app, medium, {}, g) {}
  pm::pmem_device<flushkit::region<Guest&>> dev;
};

/// What the virtio phase measured besides the counters.
struct host_result {
  double seconds = 0;
  host_totals host;
  int host_exit = 0; ///< exit status of the host process (two-process mode)
};

/// Runs the writers on `app` for the requested time, then takes the stack
/// down: device (final flush), topology (guest removed, host stopped), `app`.
template <class Topology, class Holder>
double drive(const virtio_config& c, loop_thread& app, Topology& topo, Holder& h, run_state& rs) {
  app.start();
  std::latch done(c.writers);
  const auto t0 = clock_type::now(); // before the first write: co_spawn only queues the writers
  spawn_writers(app.io, h.dev, rs, c.writers, done);
  run_window(c.seconds, t0, rs.counters, "writes", [&] { return topo.host_flushes(); });
  done.wait(); // every writer has its last write acknowledged
  h.dev.remove();
  topo.shutdown();
  app.join();
  return window_seconds(t0, rs.counters);
}

template <class Topology> host_result run_topology(const virtio_config& c, const pm::backing& medium, run_state& rs) {
  Topology topo(medium);
  loop_thread app; // the writers' event loop, started by drive()
  host_result r;
  if (c.coalesce) {
    coalesced_device<typename Topology::guest_t> h(app.executor(), medium.bytes(), topo.guest());
    r.seconds = drive(c, app, topo, h, rs);
  } else {
    direct_device<typename Topology::guest_t> h(app.executor(), medium.bytes(), topo.guest());
    r.seconds = drive(c, app, topo, h, rs);
  }
  r.host = topo.totals();
  if constexpr (requires { topo.host_exit_status(); }) r.host_exit = topo.host_exit_status();
  return r;
}

/// Outcome of reading the file back.
struct verification {
  std::uint64_t checked = 0, failures = 0;
  bool opened = false;
};

bool block_matches(int fd, std::uint64_t block, std::uint32_t writer, std::uint64_t seq) {
  alignas(64) std::array<std::byte, block_bytes> want, got;
  fill_pattern(want, writer, seq);
  const auto off = static_cast<off_t>(block * block_bytes);
  return ::pread(fd, got.data(), got.size(), off) == static_cast<ssize_t>(got.size()) && got == want;
}

/// Reopens `path` and compares, with pread, each block's latest acknowledged write against its pattern.
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

} // namespace

phase_result run_virtio_phase(const virtio_config& c) {
  const char* transport = c.two_process ? "in a forked child, over memfd + eventfds" : "in this process";
  if (c.coalesce)
    print_phase(c.number, "virtio-pmem: guest driver -> host device, group commit",
                strprintf("%u coroutine writers, 4 KiB FUA writes, one in flight each: pmem_device -> coalescer ->\n"
                          "pmem_guest ==virtqueue==> pmem_host (%s) -> fdatasync of the pmem file.\n"
                          "file: %s", c.writers, transport, c.file.c_str()));
  else
    print_phase(c.number, "virtio-pmem baseline: one host flush per FUA write",
                strprintf("the same %u writers and path without the coalescer: every FUA write sends its own\n"
                          "flush request to pmem_host (%s), which runs one fdatasync for it.\n"
                          "file: %s", c.writers, transport, c.file.c_str()));
  const std::uint64_t bytes = std::uint64_t{c.writers} * blocks_per_writer * block_bytes;
  run_state rs(c.writers);
  host_result h;
  {
    auto medium = pm::backing::file(c.file.c_str(), {.size = static_cast<std::size_t>(bytes)}); // zero-filled
    if (!medium) throw std::runtime_error(c.file + ": " + medium.error().message());
    h = c.two_process ? run_topology<two_process_topology>(c, *medium, rs)
                      : run_topology<inproc_topology>(c, *medium, rs);
  } // unmapped and closed: the check below reads the file, not the mapping
  const verification v = verify_file(c.file, rs);

  phase_result r;
  r.group = strprintf("virtio-pmem, pmem_guest -> pmem_host (%s): 4 KiB FUA writes, %u writers",
                      c.two_process ? "two processes" : "in-process", c.writers);
  r.model = c.coalesce ? "group commit (coalescer)" : "one host flush per write";
  r.baseline = !c.coalesce;
  r.seconds = h.seconds;
  r.acks = rs.counters.completed - rs.counters.failed;
  r.flushes = h.host.flushes;
  r.p50_ns = rs.counters.latency.percentile(0.50);
  r.p99_ns = rs.counters.latency.percentile(0.99);
  r.to_verify = v.checked;
  r.verified = v.checked - v.failures;
  r.verified_unit = "blocks";
  print_detail("%s writes acknowledged; the host served %s requests, %s fdatasync calls (%s failed, %s malformed)",
               grouped(r.acks).c_str(), grouped(h.host.requests).c_str(), grouped(h.host.flushes).c_str(),
               grouped(h.host.failures).c_str(), grouped(h.host.malformed).c_str());
  print_detail("file unmapped, reopened: %s of %s blocks hold their latest acknowledged write (pread)",
               grouped(r.verified).c_str(), grouped(v.checked).c_str());
  if (!v.opened) r.problems.push_back("the file could not be reopened");
  if (v.failures != 0)
    r.problems.push_back(grouped(v.failures) + " blocks differ from their latest acknowledged write");
  if (rs.counters.failed != 0)
    r.problems.push_back(grouped(rs.counters.failed) + " writes failed (the first: " +
                         rs.counters.first_error.message() + ")");
  if (rs.counters.aborted != 0) r.problems.push_back(grouped(rs.counters.aborted) + " writers ended with an exception");
  if (h.host.malformed != 0) r.problems.push_back(grouped(h.host.malformed) + " malformed requests at the host");
  if (h.host.failures != 0) r.problems.push_back(grouped(h.host.failures) + " host flushes failed");
  if (h.host_exit != 0) r.problems.push_back("the host process exited with status " + std::to_string(h.host_exit));
  std::printf("\n");
  return r;
}

} // namespace flushkit::demo
