// demo/virtio_phase.hpp - the virtio-pmem phases: FUA writes through the guest driver to the host device.
#pragma once

#include "report.hpp"

#include <string>

namespace flushkit::demo {

/// What a virtio phase runs.
struct virtio_config {
  std::string file;         ///< the pmem file (created by the phase; must not exist)
  unsigned writers = 64;    ///< concurrent coroutine writers, one FUA write in flight each
  double seconds = 3;       ///< how long writes are submitted
  bool two_process = false; ///< the host device in a forked child (memfd + eventfds)
  bool coalesce = true;     ///< group commit (a coalescer) in front of the guest; false: one host flush per write
  int number = 3;           ///< the phase's number in the run
};

/// Effects: `c.writers` coroutines on one event-loop thread do 4 KiB FUA
/// writes (writer w cycles over its 16 blocks) through `pmem_device` ->
/// region -> (coalescer ->) `pmem_guest`, whose requests `pmem_host`
/// serves with fdatasync of `c.file`, for `c.seconds`; then the device and
/// the host stop, the file is unmapped, reopened, and each block compared
/// (pread) with its latest acknowledged write. Prints the phase as it runs.
/// Returns: its row of the summary. Throws std::runtime_error when the file
/// or the virtio wiring cannot be set up.
phase_result run_virtio_phase(const virtio_config& c);

} // namespace flushkit::demo
