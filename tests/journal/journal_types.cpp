// tests/journal/journal_types.cpp - options defaults and the derived counters.
#include <flushkit/journal/journal_types.hpp>

#include <doctest/doctest.h>

TEST_CASE("journal types: defaults and average_batch") {
  const flushkit::journal_options o;
  CHECK(o.segment_bytes == 64ull << 20);
  CHECK(o.preallocate == flushkit::pmem::preallocation::zero_fill);
  CHECK(o.spare_segments == 1);
  CHECK(o.first_lsn == 1);
  flushkit::journal_stats s;
  CHECK(s.average_batch() == 0.0);
  s.appends = 90;
  s.flushes = 4;
  CHECK(s.average_batch() == doctest::Approx(22.5));
}
