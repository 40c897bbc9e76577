// flushkit/journal/journal_types.hpp - a journal's options, counters and recovery report.
#pragma once

#include <flushkit/journal/record.hpp>
#include <flushkit/pmem/backing.hpp>

#include <cstddef>
#include <cstdint>

namespace flushkit {

/// Construction options of a `basic_journal`.
struct journal_options {
  /// `journal::open(ex, path, ...)` only: bytes of each segment file (a
  /// multiple of 4096). A journal over another store uses the store's size.
  std::uint64_t segment_bytes = 64ull << 20;
  /// `journal::open(ex, path, ...)` only: how segment files are allocated
  /// (see `segment_directory_options::preallocate`).
  pmem::preallocation preallocate = pmem::preallocation::zero_fill;
  /// `journal::open(ex, path, ...)` only: create the directory if missing.
  bool create_directory = true;
  /// Bytes of each of the two staging buffers: the most record bytes one
  /// backend flush can carry while the next batch fills the other buffer.
  /// Raised to hold at least one record of `max_record_bytes`.
  std::size_t buffer_bytes = 1u << 20;
  /// Largest payload accepted; 0: the largest that fits in a staging
  /// buffer (`buffer_bytes` - 16) and in a segment. A larger value raises
  /// the staging buffers to hold one such record each.
  std::size_t max_record_bytes = 0;
  /// Segments kept created (zero-filled and synced) ahead of the one being
  /// written, so a rotation does not wait for allocation (>= 1). `open`
  /// creates them before it returns; the keeper thread afterwards.
  std::size_t spare_segments = 1;
  /// The LSN of the first record of a new journal (>= 1).
  lsn_t first_lsn = 1;
};

/// What `basic_journal::open` found.
struct journal_recovery {
  bool created = false;                ///< there was no journal: a new one was made
  lsn_t first_lsn = 0;                 ///< first record present (0: none)
  lsn_t last_lsn = 0;                  ///< last valid record (0: none)
  lsn_t next_lsn = 0;                  ///< what the next append gets
  std::uint64_t records = 0;           ///< valid records found
  std::uint64_t segments = 0;          ///< segments kept
  std::uint64_t segments_discarded = 0; ///< segments after the end of the log holding data (never acknowledged), deleted
  std::uint64_t tail_bytes_zeroed = 0; ///< bytes of the 64 KiB chunks after the last valid record that were not all zero, zeroed and synced
};

/// Counters of a `basic_journal` (a consistent snapshot, see `stats()`).
struct journal_stats {
  std::uint64_t appends = 0;          ///< appends acknowledged durable
  std::uint64_t bytes = 0;            ///< payload bytes of those
  std::uint64_t failed_appends = 0;   ///< appends completed with an error after they were queued
  std::uint64_t withdrawn = 0;        ///< appends cancelled while waiting for buffer space
  std::uint64_t flushes = 0;          ///< backend flush batches that succeeded (write + sync)
  std::uint64_t buffer_waits = 0;     ///< appends that found both staging buffers in use
  std::uint64_t rotations = 0;        ///< moves to a new segment
  std::uint64_t rotation_waits = 0;   ///< rotations that found no spare segment ready (0 when sized right)
  std::uint64_t segments_created = 0; ///< spares created (by `open` and the background keeper)
  std::uint64_t segments_removed = 0; ///< released segments deleted
  std::uint64_t remove_failures = 0;  ///< deletions that failed (the segment stays, and later ones wait for the next `release`)
  std::uint64_t segments = 0;         ///< live segments (holding records or being written)
  lsn_t durable_lsn = 0;              ///< every record up to here is durable
  lsn_t next_lsn = 0;                 ///< the LSN the next staged record gets

  /// Appends a backend flush covered, on average (0 before the first).
  double average_batch() const noexcept {
    return flushes == 0 ? 0.0 : static_cast<double>(appends) / static_cast<double>(flushes);
  }
};

} // namespace flushkit
