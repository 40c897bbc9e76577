// demo/journal_phase.hpp - the storage-engine phases: flushkit::journal, and pwrite + fdatasync per append.
#pragma once

#include "report.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace flushkit::demo {

/// Bytes of each log segment file, the journal's and the baseline's.
inline constexpr std::uint64_t log_segment_bytes = 8ull << 20;

/// What a storage-engine phase runs.
struct storage_config {
  std::string dir;                ///< the log's directory (created by the phase; must not exist)
  unsigned appenders = 64;        ///< concurrent appenders (coroutines on one io_context)
  std::size_t record_bytes = 256; ///< payload of each record (>= pattern_header_bytes)
  double seconds = 3;             ///< how long appends are submitted
  int number = 1;                 ///< the phase's number in the run
};

/// Effects: `c.appenders` coroutines on one event-loop thread append
/// records to a `flushkit::journal` in `c.dir` (each awaits durability
/// before its next append) for `c.seconds`; then the journal is closed,
/// reopened (recovery, whose report is printed) and closed, and the log is
/// read back with `journal_reader`: every acknowledged LSN must be present
/// with the exact payload appended for it. Prints the phase as it runs.
/// Returns: its row of the summary. Throws std::runtime_error when the
/// journal cannot be opened.
phase_result run_journal_phase(const storage_config& c);

/// Effects: the same appenders and records, through the naive engine: one
/// I/O thread takes the appends one at a time, in order, and does, for
/// each, `pwrite` of the framed record (the journal's on-disk format) at the
/// next offset of a zero-filled segment file, then `fdatasync`. Then the
/// log is read back and checked as the journal's is. Returns: its row.
/// Throws std::runtime_error when the log cannot be created.
phase_result run_baseline_phase(const storage_config& c);

} // namespace flushkit::demo
