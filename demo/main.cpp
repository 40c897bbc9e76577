// demo/main.cpp - flushkit-demo: the two things flushkit is for, each against its naive baseline, in one run.
//
//  [1] storage engine: flushkit::journal with N coroutine appenders (group commit)   journal_phase.cpp
//  [2]   baseline: pwrite + fdatasync per append, one at a time                      journal_phase.cpp
//  [3] virtio-pmem: FUA writes, pmem_device -> coalescer -> pmem_guest -> pmem_host   virtio_phase.cpp
//  [4]   baseline: the same path, one host flush per write                          virtio_phase.cpp
//
// Each phase submits for --seconds, lets what is in flight complete, then
// reopens its files and checks every acknowledged write; the summary table
// (report.cpp) compares the four. Exit status 1 when any check failed.
#include "demo_file.hpp"
#include "journal_phase.hpp"
#include "options.hpp"
#include "report.hpp"
#include "virtio_phase.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <vector>

namespace fd = flushkit::demo;

namespace {

int run(const fd::demo_options& o) {
  const auto start = fd::clock_type::now();
  const fd::demo_dir dir(o.dir, o.keep);
  fd::print_header(o, dir.path(), fd::fs_type_name(dir.path()));
  std::vector<fd::phase_result> rows;

  fd::storage_config s{dir.file("journal"), o.writers, o.record_bytes, o.seconds, 1};
  rows.push_back(fd::run_journal_phase(s));
  s.dir = dir.file("baseline-log");
  s.number = 2;
  rows.push_back(fd::run_baseline_phase(s));

  fd::virtio_config v{dir.file("pmem-coalesced.img"), o.writers, o.seconds, o.two_process, true, 3};
  rows.push_back(fd::run_virtio_phase(v));
  v.file = dir.file("pmem-direct.img");
  v.coalesce = false;
  v.number = 4;
  rows.push_back(fd::run_virtio_phase(v));

  return fd::print_summary(rows, std::chrono::duration<double>(fd::clock_type::now() - start).count());
}

} // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const auto opts = fd::parse_options(argc, argv, exit_code);
  if (!opts) return exit_code;
  try {
    return run(*opts);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "flushkit-demo: %s\n", e.what());
    return 1;
  }
}
